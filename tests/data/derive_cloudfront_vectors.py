#!/usr/bin/env python3
"""Derive CloudFront signed-URL test vectors with the real botocore CloudFrontSigner.

Reproduce (from the crate root):
    python3 -m venv /tmp/venv-cdn && /tmp/venv-cdn/bin/pip install botocore rsa
    /tmp/venv-cdn/bin/python tests/data/derive_cloudfront_vectors.py

The key is tests/data/cloudfront_test_key.pem (a throwaway 2048-bit key generated
with `openssl genrsa -traditional 2048`; NEVER use it for anything real).
RSA PKCS#1 v1.5 is deterministic, so the Rust signer must match byte for byte.
Versions used for the committed vectors: botocore 1.44.8, rsa 4.9.1.
"""
import datetime
import os

import rsa
from botocore.signers import CloudFrontSigner

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "cloudfront_test_key.pem"), "rb") as f:
    KEY = rsa.PrivateKey.load_pkcs1(f.read())

KEY_PAIR_ID = "K2JCJMDEHXQW5F"
URL = "https://d111111abcdef8.cloudfront.net/hls/42/playlist.m3u8"
EXPIRES = 2000000000
ISSUED = 1700000000
EXP_DT = datetime.datetime.fromtimestamp(EXPIRES, tz=datetime.timezone.utc)
ST_DT = datetime.datetime.fromtimestamp(ISSUED, tz=datetime.timezone.utc)


def signer(hash_name):
    return CloudFrontSigner(KEY_PAIR_ID, lambda m: rsa.sign(m, KEY, hash_name))


sha1 = signer("SHA-1")
sha256 = signer("SHA-256")

print("canned_sha1 =", sha1.generate_presigned_url(URL, date_less_than=EXP_DT))
wild = sha1.build_policy("https://d111111abcdef8.cloudfront.net/hls/42/*", EXP_DT)
print("custom_wildcard_policy =", wild)
print("custom_wildcard_sha1 =", sha1.generate_presigned_url(URL, policy=wild))
ipp = sha1.build_policy(URL, EXP_DT, ip_address="203.0.113.7")
print("custom_ip_policy =", ipp)
print("custom_ip_sha1 =", sha1.generate_presigned_url(URL, policy=ipp))
stp = sha1.build_policy(
    "https://d111111abcdef8.cloudfront.net/hls/42/*", EXP_DT, date_greater_than=ST_DT,
    ip_address="2001:db8::1/128",
)
print("custom_wild_ip6_start_policy =", stp)
print("custom_wild_ip6_start_sha1 =", sha1.generate_presigned_url(URL, policy=stp))
# botocore has no Hash-Algorithm support; CloudFront accepts SHA-256 signatures when
# the URL carries Hash-Algorithm=SHA256, so we append it after botocore's output.
print("canned_sha256 =", sha256.generate_presigned_url(URL, date_less_than=EXP_DT) + "&Hash-Algorithm=SHA256")
