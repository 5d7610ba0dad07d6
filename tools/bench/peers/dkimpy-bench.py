#!/usr/bin/python3
"""inkan benchmark peer: dkimpy signing and verifying one message in a loop, keys in memory.
   dkimpy-bench.py KEYFILE RECORD MESSAGE CANON SECONDS  ->  {"sign": per_s, "verify": per_s}"""
import json, sys, time
import dkim

key_file, record, message_file, canon, seconds = sys.argv[1:6]
key = open(key_file, 'rb').read()
message = open(message_file, 'rb').read()
seconds = float(seconds)
header, body = canon.encode().split(b'/')

def sign():
    return dkim.sign(message, b'bench', b'example.org', key, canonicalize=(header, body),
                     include_headers=[b'from', b'to', b'subject', b'date', b'message-id'])

def rate(fn):
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)

signed = sign() + message
dnsfunc = lambda name, timeout=5: record.encode()
assert dkim.verify(signed, dnsfunc=dnsfunc), 'dkimpy cannot verify its own signature'
print(json.dumps({'sign': rate(sign), 'verify': rate(lambda: dkim.verify(signed, dnsfunc=dnsfunc))}))
