"""One FTP operation with python's ftplib, for the end-to-end tests (see clients.ts).

Usage: python3 ftplib_client.py JSON
JSON: {host, port, user, password, mode: "pasv"|"epsv"|"port", op: "download"|"upload"|"list",
       remote, local, timeout, tls: null | {cafile, prot: "P"|"C"}, times}
With tls: ftplib.FTP_TLS (AUTH TLS before login, the server's certificate checked against
cafile), then PROT P (or C). The operation runs `times` times in the one session.

stdout: the LIST lines (op "list" only). stderr: ftplib's debug trace ("*cmd* 'EPSV'" lines),
then the error, if any. Exit 0 on success, 1 on any failure.
"""
import ftplib
import json
import socket
import ssl
import sys


def main() -> int:
    a = json.loads(sys.argv[1])
    listing = []
    # ftplib's debug trace goes to stdout through print(); keep stdout for the listing.
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    try:
        tls = a.get("tls")
        if tls:
            ftp = ftplib.FTP_TLS(timeout=a["timeout"], context=ssl.create_default_context(cafile=tls["cafile"]))
        else:
            ftp = ftplib.FTP(timeout=a["timeout"])
        ftp.set_debuglevel(1)
        ftp.connect(a["host"], a["port"])
        ftp.login(a["user"], a["password"])
        if tls:
            if tls.get("prot", "P") == "P":
                ftp.prot_p()
            else:
                ftp.prot_c()
        if a["mode"] == "port":
            # Active mode: PORT (EPRT over IPv6); ftplib listens, the server side connects.
            ftp.set_pasv(False)
        elif a["mode"] == "epsv":
            # makepasv() sends EPSV (and parses the 229) only when af is AF_INET6; it then dials
            # the control connection's peer, an IPv4 address here, which create_connection
            # accepts. af is used for nothing else in passive mode.
            ftp.af = socket.AF_INET6
        else:
            # PASV, and dial the address the 227 names (ftplib ignores it by default).
            ftp.trust_server_pasv_ipv4_address = True
        op = a["op"]
        for _ in range(a.get("times", 1)):
            if op == "download":
                with open(a["local"], "wb") as f:
                    ftp.retrbinary("RETR " + a["remote"], f.write)
            elif op == "upload":
                with open(a["local"], "rb") as f:
                    ftp.storbinary("STOR " + a["remote"], f)
            elif op == "list":
                ftp.retrlines("LIST " + a["remote"] if a["remote"] else "LIST", listing.append)
            else:
                raise ValueError("unknown op " + op)
        ftp.quit()
    except Exception as e:  # every failure is a non-zero exit with its reason
        print("ftplib_client: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    finally:
        sys.stdout = real_stdout
    for line in listing:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
