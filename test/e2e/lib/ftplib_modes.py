"""One RETR or STOR with python's ftplib in a chosen data mode, for the compatibility matrix.

Usage: python3 ftplib_modes.py JSON
JSON: {host, port, user, password, mode: "pasv"|"epsv"|"port"|"eprt", op: "download"|"upload",
       remote, local, timeout}

The modes are ftplib's own, unpatched, behaviour:
- pasv: set_pasv(True) on an IPv4 control connection sends PASV; trust_server_pasv_ipv4_address
  makes it dial the address the 227 names (it dials the control peer by default).
- epsv: set_pasv(True) on an IPv6 control connection (host "::1") sends EPSV.
- port: set_pasv(False) on an IPv4 control connection sends PORT.
- eprt: set_pasv(False) on an IPv6 control connection sends EPRT.
ftplib picks EPSV/EPRT only from the socket family (ftp.af); it never falls back by itself.

stderr: ftplib's debug trace ("*cmd* 'PASV'" lines), then the error, if any. Exit 0 on success.
"""
import ftplib
import json
import sys


def main() -> int:
    a = json.loads(sys.argv[1])
    # ftplib's debug trace goes to stdout through print(); send it to stderr with the rest.
    sys.stdout = sys.stderr
    try:
        ftp = ftplib.FTP(timeout=a["timeout"])
        ftp.set_debuglevel(1)
        ftp.connect(a["host"], a["port"])
        ftp.login(a["user"], a["password"])
        mode = a["mode"]
        ftp.set_pasv(mode in ("pasv", "epsv"))
        if mode == "pasv":
            ftp.trust_server_pasv_ipv4_address = True
        if op_is(a, "download"):
            with open(a["local"], "wb") as f:
                ftp.retrbinary("RETR " + a["remote"], f.write)
        else:
            with open(a["local"], "rb") as f:
                ftp.storbinary("STOR " + a["remote"], f)
        ftp.quit()
    except Exception as e:  # every failure is a non-zero exit with its reason
        print("ftplib_modes: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    return 0


def op_is(a: dict, op: str) -> bool:
    if a["op"] not in ("download", "upload"):
        raise ValueError("unknown op " + a["op"])
    return a["op"] == op


if __name__ == "__main__":
    sys.exit(main())
