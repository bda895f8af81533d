#!/usr/bin/env python3
"""Derive Akamai EdgeAuth 2.0 vectors with the real `akamai-edgeauth` package (0.3.2).

    /tmp/venv-cdn/bin/pip install akamai-edgeauth
    /tmp/venv-cdn/bin/python tests/data/derive_akamai_vectors.py
"""
from akamai.edgeauth import EdgeAuth

KEY = "52a152a152a152a152a152a152a152a1"  # hex, as EdgeAuth expects
EXP = 2000000000
ST = 1700000000

print("acl_path =", EdgeAuth(key=KEY, end_time=EXP).generate_acl_token("/hls/42/playlist.m3u8"))
print("acl_dir =", EdgeAuth(key=KEY, end_time=EXP).generate_acl_token("/hls/42/*"))
print("acl_dir_ip_st =", EdgeAuth(key=KEY, start_time=ST, end_time=EXP, ip="203.0.113.7").generate_acl_token("/hls/42/*"))
print("acl_path_st =", EdgeAuth(key=KEY, start_time=ST, end_time=EXP).generate_acl_token("/videos/a%20b.mp4"))
