#!/usr/bin/env python3
"""Writes the hand-made seed inputs of every fuzz target into fuzz/corpus/<target>/.

Run once when a target is added (scripts/fuzz.sh does it if a corpus directory is
missing); the fuzzer grows the corpora from there and `cargo fuzz cmin` keeps them
small. The binary layouts mirror the `Reader` calls in fuzz/src/lib.rs.
"""
import hashlib
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def be(n, width):
    return n.to_bytes(width, "big")


SQL = [
    'SELECT "tracks"."id" FROM "tracks" WHERE "tracks"."id" = $1 LIMIT $2',
    "select * from t where a = ? and b = ?",
    "SELECT * FROM t WHERE x = 1.5e3 OR y = .5 OR z = 0xFF",
    "select * from t where name = 'O''Brien' and b = TRUE and c = false",
    "select E'a\\'b', $$x'y$$, $tag$ q $tag$ from t",
    "select * from t where id = -5",
    "select a - 5 from t; ;",
    "  SELECT  *\n\tFROM t -- trailing comment\n WHERE /* c1 /* nested */ still */ id = $1 ; ",
    "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z') RETURNING id",
    "SELECT * FROM t WHERE id IN (1, 2, 3) AND x::text = ANY($1)",
    "WITH x AS (SELECT 1) UPDATE ONLY public.\"Users\" SET a = -1 WHERE b ?| array['a']",
    "DELETE FROM `t` WHERE a[1] = B'101' OR b = X'ff' OR c = N'x'",
    "select \"a\"\"b\", `c``d` from \"s\".\"t\" where (a, b) in ((1, 2))",
]
for s in SQL:
    write("sql_normalize", s)

n1 = os.path.join(os.path.dirname(ROOT), "tests", "data", "n1")
for name in sorted(os.listdir(n1)):
    with open(os.path.join(n1, name), "rb") as f:
        data = f.read()
    if len(data) <= 4096:
        write("n1_trace", data)
write(
    "n1_trace",
    '{"route":"/a","method":"GET","statements":[{"sql":"SELECT 1","params":[1],"start_us":0,"duration_us":5},'
    '{"sql":"SELECT 2","params":null,"start_us":3,"duration_us":18446744073709551615}]}\n\n{"route":"/b","statements":[]}\n',
)


def cdn(provider, flags, text, ip_kind=0, ip=b"\xc0\x00\x02\x07", expires=2_000_000_000,
        issued=0, speed=0):
    ipb = ip if ip_kind & 1 == 0 else (ip + bytes(16))[:16]
    return bytes([provider, flags, ip_kind]) + ipb + be(expires, 5) + be(issued, 5) + be(speed, 2) + text.encode()


BUNNY, CLOUDFRONT, CLOUDFLARE, AKAMAI, NGINX = range(5)
seeds = [
    cdn(BUNNY, 0, "https://token-tester.b-cdn.net/300kb.jpg\nSecurityKey"),
    cdn(BUNNY, 0x01, "https://z.b-cdn.net/hls/42/index.m3u8\nSecurityKey"),
    cdn(BUNNY, 0x02 | 0x04, "https://z.b-cdn.net/a/b.mp4?v=1&w=%20x\nk\n/a/\nUS,CA\nRU", speed=100),
    cdn(BUNNY, 0x20 | 0x02, "https://z.b-cdn.net/a.mp4\nlegacy-key", ip_kind=1, ip=bytes(range(16))),
    cdn(BUNNY, 0, "https://z.b-cdn.net/a.mp4?x=1\nk\n/a\n\n", ip_kind=2),
    cdn(CLOUDFRONT, 0, "https://d111111abcdef8.cloudfront.net/hls/3/master.m3u8\nK2JCJMDEHXQW5F"),
    cdn(CLOUDFRONT, 0x01 | 0x10 | 0x40 | 0x80, "https://d.cloudfront.net/a/b.ts?x=1\nKID", issued=1_900_000_000),
    cdn(CLOUDFLARE, 0, "https://cf.example/a/b.mp3\nsecret", issued=1_700_000_000, expires=1_700_003_600),
    cdn(CLOUDFLARE, 0x08, "https://cf.example/a/b.mp3?q=1\nsecret", issued=1_700_000_000, expires=1_700_003_600),
    cdn(AKAMAI, 0x01, "https://a.example/hls/3/master.m3u8\n0a1b2c3d\n\n\n\n\nhdnts", issued=1_700_000_000),
    cdn(AKAMAI, 0x02, "https://a.example/x%7E.mp4?y=2\naabbcc"),
    cdn(NGINX, 0, "http://example.com/s/link\nsecret"),
    cdn(NGINX, 0x01, "http://edge:8080/hls/42/master.m3u8\nsecret"),
    cdn(NGINX, 0x02, "http://example.com/s/a%20b\nsecret\n\n\n\n$secure_link_expires$uri$remote_addr $secret"),
    cdn(NGINX, 0, "http://example.com/s/x\nsecret\n\n\n\n${secure_link_expires}lit"),
]
for s in seeds:
    write("cdn_sign", s)

for u in [
    "https://token-tester.b-cdn.net/300kb.jpg?token=HS256-o10JRWlsAItyAsdKS6jJKjabHN4FrFsplDHPV1idcX4&expires=1598024587",
    "https://z.b-cdn.net/bcdn_token=HS256-abc&token_path=%2Fhls%2F42%2F&expires=2000000000/hls/42/index.m3u8",
    "http://example.com/s/link?md5=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647",
    "http://edge:8080/hls/42/master.m3u8?md5=abc-_&expires=1700000000",
    "https://d.cloudfront.net/hls/3/master.m3u8?Policy=P~&Signature=S_&Key-Pair-Id=K1",
    "https://a.example/hls/3/master.m3u8?hdnts=exp=1~acl=/hls/3/*~hmac=ab",
    "https://a.example/v/1/x.ts?hdnts=ip=192.0.2.7~st=1~exp=1800000000~acl=/v/*/x.ts!/w/*~hmac=00",
    "https://cf.example/a/b.mp3?verify=1700000000-abc%2B%2F%3D",
    "https://cf.example/a/b.mp3?q=1&verify=1700000000-abc_-",
    "https://h.example:8443/a/b.m3u8?x=1&y=2",
    "http://h/",
    "https://h/a//b/../c/./d%2e%2E/%FF",
]:
    write("cdn_url", u)

for m in [
    "d\n1700003600\nAAAA\nhls/3/master.m3u8",
    "f\n1700003600\ntoken\ntracks/1/original.wav\nCafé Noir.wav",
    "f\n18446744073709551615\nx\ntracks/1/a.mp3\na+b c%20.mp3\n18446744073709551615",
    "d\n0\n\nhls/3/seg-a.ts\n\n0",
    "x\n1\n!!\n../etc/passwd",
]:
    write("media_token", m)

for p in [
    "..", "../master.m3u8", "..%2fmaster.m3u8", "%252e%252e%252fmaster.m3u8", "..\\master.m3u8",
    "/etc/passwd", "a/../../b.ts", "seg.ts%00.m3u8", "seg.ts\0", "\u2024\u2024/master.m3u8",
    "\uff0e\uff0e\uff0fmaster.m3u8", ".htaccess", "master.m3u8.", "master.M3U8.exe",
    "master.m3u8", "seg-16d5caa557d9df3b.ts", "init.mp4", "chunk_1.m4s", "a.aac",
    "hls/3/seg-a.ts", "tracks/3/original.wav\nSlow Orbit", "tracks/1/x.FLAC\nÉté: a/b \"q\" \\ ..",
    "hls//x", "hls/3/", "k.mp3\n...",
]:
    write("paths", p)

MEDIA = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:5.99075,\nseg-aa.ts\n#EXTINF:3.0,\nseg-bb.ts\n#EXT-X-ENDLIST\n"
for p in [
    MEDIA,
    MEDIA.replace("\n", "\r\n"),
    "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nmedia.m3u8\n",
    "#EXTM3U\n#EXTINF:1,\nhttps://elsewhere/x.ts\n",
    "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:1,\n  chunk_1.m4s  \n\n#EXTINF:1,\n../x.ts\n",
]:
    write("playlist", p)

for sel, headers in [
    (2, "bytes=0-9"), (2, "bytes=-5"), (2, "bytes=990-"), (2, "bytes=5-4"), (2, "bytes=2000-"),
    (2, "bytes=0-0,5-6"), (1, "bytes=0-"), (0, "bytes=0-"), (0, "bytes=-5"), (0x82, "bytes=1-2"),
    (2, "\n*"), (2, "bytes=0-1\n\n\"x\""), (2, "\n\n\nSun, 06 Nov 2994 08:49:37 GMT"),
    (2, "items=0-1"), (2, "bytes=\xff"),
]:
    write("http_range", bytes([sel]) + headers.encode("latin-1"))

for c in [
    "DATABASE_URL=postgres://app:hunter2hunter2@db/veza\nVEZA_DB_MAX_CONNECTIONS=5",
    "DATABASE_URL=sqlite::memory:\nVEZA_BIND=[::]:0\nVEZA_WORKERS=0\nVEZA_POOL_STATS_INTERVAL=250ms",
    "CDN_ENABLED=true\nCDN_PROVIDER=bunny\nCDN_BASE_URL=https://z.b-cdn.net\nCDN_SECURITY_KEY=SecurityKey0123456789\nVEZA_ORIGIN_SECRET=origin-secret-0123456789",
    "CDN_ENABLED=true\nCDN_PROVIDER=nginx\nCDN_SECURITY_KEY=nginx-secret-abcdefgh\nCDN_NGINX_SECURE_LINK_EXPRESSION=$secure_link_expires$uri$remote_addr $secret\nCDN_HLS_DELIVERY=edge",
    "CDN_ENABLED=true\nCDN_PROVIDER=akamai\nCDN_SECURITY_KEY=0a1b2c3d4e5f\nCDN_AKAMAI_TOKEN_NAME=hdnts\nCDN_HLS_DELIVERY=cookies\nCDN_COOKIE_DOMAIN=.example.com",
    "CDN_ENABLED=true\nCDN_PROVIDER=cloudflare\nCDN_SECURITY_KEY=k\nCDN_URL_TTL=15m\nCDN_CLOUDFLARE_URL_SAFE=yes",
    "CDN_ENABLED=true\nCDN_PROVIDER=cloudfront\nCDN_CLOUDFRONT_KEY_PAIR_ID=K2\nCDN_CLOUDFRONT_PRIVATE_KEY_FILE=/nonexistent.pem\nCDN_CLOUDFRONT_HASH=SHA256",
    "STORAGE_BACKEND=s3\nS3_BUCKET=media\nS3_ENDPOINT=http://127.0.0.1:9000\nS3_ACCESS_KEY_ID=AKIA\nS3_SECRET_ACCESS_KEY=very-secret-access-key\nS3_FORCE_PATH_STYLE=1",
    "VEZA_CORS_ALLOWED_ORIGINS=https://app.example.com,http://localhost:3000\nVEZA_PUBLIC_URL=https://api.example.com/\nVEZA_ORIGIN_SECRET_HEADER=X-Edge\nVEZA_ORIGIN_SECRET_FILE=xx",
    "VEZA_MEDIA_SIGNING_KEY=media-signing-key-0123456789abcdef0123\nVEZA_N1_ALLOW=/admin/*,0123456789abcdef\nVEZA_N1_THRESHOLD=0\nVEZA_N1_REPEAT_THRESHOLD=1\nVEZA_DB_MIN_CONNECTIONS=11",
    "3=x\n27=y\n1000=z",
]:
    write("config", c)
# OpenTelemetry OTLP JSON: the hand-checked fixture (split over two export lines), a
# pretty-printed document with base64 ids, and edge cases (empty, ids missing).
with open(os.path.join(os.path.dirname(ROOT), "tests", "data", "otlp", "split.jsonl"), "rb") as f:
    write("otlp_trace", f.read())
for doc in [
    '{"resourceSpans":[{"scopeSpans":[{"spans":[\n'
    ' {"traceId":"AAECAwQFBgcICQoLDA0ODw==","spanId":"AQIDBAUGBwg=","name":"GET /p",'
    '"startTimeUnixNano":"1000","endTimeUnixNano":"9000","attributes":[{"key":"http.route","value":{"stringValue":"/p/{id}"}}]},\n'
    ' {"traceId":"AAECAwQFBgcICQoLDA0ODw==","spanId":"AgIDBAUGBwg=","parentSpanId":"AQIDBAUGBwg=","name":"SELECT",'
    '"startTimeUnixNano":2000,"endTimeUnixNano":3000,"attributes":[{"key":"db.query.text","value":{"stringValue":"SELECT * FROM t WHERE id = $1"}},'
    '{"key":"db.query.parameter.0","value":{"intValue":"7"}}]}\n'
    ']}]}]}\n',
    '{"resourceSpans":[]}\n{}\n',
    '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"","spanId":"","attributes":[{"key":"db.statement","value":{"stringValue":"SELECT 1"}}]}]}]}]}\n',
]:
    write("otlp_trace", doc)

print("seeds written under", os.path.join(ROOT, "corpus"), file=sys.stderr)
