#!/usr/bin/python3
"""inkan test peer: dkimpy (Debian python3-dkim) as an independent DKIM implementation.

  dkimpy.py verify DNS_PORT FILE...   one JSON line per file: every DKIM-Signature's verdict
  dkimpy.py sign KEY DOMAIN SELECTOR ALGORITHM CANON FILE   prints the DKIM-Signature field

Keys are fetched only from the given port on 127.0.0.1, never through resolv.conf.
For ed25519-sha256, KEY holds the base64 of the raw 32-byte seed (dkimpy's own format).
"""
import json
import sys

import dkim
import dns.resolver


def make_dnsfunc(port):
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = ['127.0.0.1']
    res.port = port

    def dnsfunc(name, timeout=5):
        try:
            answer = res.resolve(name.decode() if isinstance(name, bytes) else name, 'TXT', lifetime=timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b''.join(answer[0].strings)

    return dnsfunc


def verify(port, files):
    dnsfunc = make_dnsfunc(port)
    for path in files:
        with open(path, 'rb') as f:
            message = f.read()
        d = dkim.DKIM(message)
        sigs = [v for k, v in d.headers if k.lower() == b'dkim-signature']
        out = []
        for i, sig in enumerate(sigs):
            try:
                tags = dkim.util.parse_tag_value(b''.join(sig.split()))
            except Exception:
                tags = {}
            try:
                ok = bool(d.verify(idx=i, dnsfunc=dnsfunc))
                why = '' if ok else 'did not verify'
            except Exception as e:  # dkimpy raises for body hash mismatch and bad keys
                ok, why = False, str(e)
            out.append({
                'pass': ok,
                'reason': why,
                'a': tags.get(b'a', b'').decode(errors='replace'),
                'd': tags.get(b'd', b'').decode(errors='replace'),
                's': tags.get(b's', b'').decode(errors='replace'),
            })
        print(json.dumps({'file': path, 'signatures': out}), flush=True)


def sign(key_path, domain, selector, algorithm, canon, path):
    with open(key_path, 'rb') as f:
        key = f.read()
    with open(path, 'rb') as f:
        message = f.read()
    header, body = canon.split('/')
    sig = dkim.sign(message, selector.encode(), domain.encode(), key,
                    canonicalize=(header.encode(), body.encode()),
                    signature_algorithm=algorithm.encode(),
                    include_headers=[b'from', b'to', b'subject', b'date', b'message-id'])
    sys.stdout.buffer.write(sig)


if __name__ == '__main__':
    if len(sys.argv) >= 3 and sys.argv[1] == 'verify':
        verify(int(sys.argv[2]), sys.argv[3:])
    elif len(sys.argv) == 8 and sys.argv[1] == 'sign':
        sign(*sys.argv[2:])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
