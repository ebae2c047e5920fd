"""A Web Key Directory (WKD) on 127.0.0.1 that gpg 2.2.40 really fetches from.

    with Wkd(directory, ["example.org"]) as wkd:
        wkd.publish("alice@example.org", binary_key)
        subprocess.run(wkd.command(["python3", "-m", "caffpy", ...]))
        wkd.requests          # (host, path) of every request, in order

Why a mount namespace (all verified with gpg 2.2.40 / dirmngr on Debian 12):
dirmngr fetches WKD keys only over HTTPS on port 443 (no port in the URL unless
DNS has an SRV record), resolves the host itself, and trusts for WKD only the
system CA bundle (/etc/ssl/certs/ca-certificates.crt): neither hkp-cacert nor
its trusted-certs directory is used ("The certificate is NOT trusted. The
certificate issuer is unknown"), and a host name without a dot is refused
("hostname missing"), so https://localhost cannot stand in. So caffpy runs
under `unshare -m` (root only), where a CA bundle holding only this test's CA,
an /etc/hosts mapping the test domains to 127.0.0.1 and an /etc/resolv.conf
naming 127.0.0.1 (where nothing answers, so SRV lookups fail at once) are
bind-mounted over the system files. The mounts are private to that process
tree (the dirmngr it starts included); nothing outside changes. The server
itself runs in the test process on 127.0.0.1:443.
"""

import datetime
import hashlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Sequence, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PORT = 443
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"
_NAMESPACE_SCRIPT = ('mount --bind "$1" %s && mount --bind "$2" /etc/hosts && '
                     'mount --bind "$3" /etc/resolv.conf && shift 3 && exec "$@"' % SYSTEM_CA)


def unavailable() -> Optional[str]:
    """Why a WKD test cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "needs root: a private mount namespace (unshare -m) and port 443"
    if not shutil.which("unshare") or subprocess.run(
            ["unshare", "-m", "--propagation", "private", "true"],
            capture_output=True).returncode != 0:
        return "unshare -m does not work here"
    if not os.path.isfile(SYSTEM_CA):
        return "%s does not exist" % SYSTEM_CA
    probe = socket.socket()
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", PORT))
    except OSError as error:
        return "cannot listen on 127.0.0.1:%d: %s" % (PORT, error)
    finally:
        probe.close()
    return None


def wkd_hash(local: str) -> str:
    """The WKD name of a local part: z-base-32 of its lower-cased SHA-1."""
    alphabet = "ybndrfg8ejkmcpqxot1uwisza345h769"
    bits = "".join(format(b, "08b") for b in hashlib.sha1(local.lower().encode()).digest())
    return "".join(alphabet[int(bits[i:i + 5].ljust(5, "0"), 2)] for i in range(0, len(bits), 5))


def _certificates(domains: Sequence[str]) -> Tuple[bytes, bytes, bytes]:
    """(CA certificate, server certificate, server key), PEM, valid from yesterday for 2 days."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "caffpy WKD test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(n) for d in domains for n in (d, "openpgpkey." + d)]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (ca.public_bytes(pem), cert.public_bytes(pem),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


class Wkd:
    def __init__(self, directory: str, domains: Sequence[str]):
        self.directory = directory
        self.domains = list(domains)
        self.keys: Dict[Tuple[str, str], bytes] = {}       # (domain, hash) -> binary key
        self.requests: List[Tuple[str, str]] = []           # (Host header, path)
        ca, cert, key = _certificates(self.domains)
        self.ca_file = self._write("ca.pem", ca)
        cert_file, key_file = self._write("server.pem", cert), self._write("server.key", key)
        hosts = "127.0.0.1 localhost\n" + "".join(
            "127.0.0.1 %s openpgpkey.%s\n" % (d, d) for d in self.domains)
        self.hosts_file = self._write("hosts", hosts.encode())
        self.resolv_file = self._write("resolv.conf", b"nameserver 127.0.0.1\n")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self._server = ThreadingHTTPServer(("127.0.0.1", PORT), self._handler_class())
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.directory, name)
        with open(path, "wb") as handle:
            handle.write(data)
        return path

    def publish(self, address: str, key: bytes) -> None:
        """Serve key (binary, as WKD wants it) for address, by the advanced and direct method."""
        local, _, domain = address.partition("@")
        self.keys[(domain.lower(), wkd_hash(local))] = key

    def lookups(self) -> List[str]:
        """The local-part hashes that were asked for, in order."""
        return [path.split("/hu/")[1].split("?")[0] for _, path in self.requests if "/hu/" in path]

    def command(self, args: Sequence[str]) -> List[str]:
        """args, run where gpg trusts this server and finds the test domains on 127.0.0.1."""
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", _NAMESPACE_SCRIPT, "sh",
                self.ca_file, self.hosts_file, self.resolv_file] + list(args)

    def start(self) -> "Wkd":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def __enter__(self) -> "Wkd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _handler_class(self):
        wkd = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                host = (self.headers.get("Host") or "").split(":")[0].lower()
                wkd.requests.append((host, self.path))
                path = urllib.parse.urlsplit(self.path).path
                # https://openpgpkey.DOMAIN/.well-known/openpgpkey/DOMAIN/hu/HASH (advanced)
                # or https://DOMAIN/.well-known/openpgpkey/hu/HASH (direct); the same for policy.
                advanced = re.match(r"^/\.well-known/openpgpkey/([^/]+)/(policy|hu/([^/]+))$", path)
                direct = re.match(r"^/\.well-known/openpgpkey/(policy|hu/([^/]+))$", path)
                if advanced and host == "openpgpkey." + advanced.group(1):
                    domain, what, name = advanced.group(1), advanced.group(2), advanced.group(3)
                elif direct and host in wkd.domains:
                    domain, what, name = host, direct.group(1), direct.group(2)
                else:
                    self.send_error(404)
                    return
                if what == "policy":
                    self._send(b"")
                elif (domain, name) in wkd.keys:
                    self._send(wkd.keys[(domain, name)])
                else:
                    self.send_error(404)

            def _send(self, data: bytes):
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
