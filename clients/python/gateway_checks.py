"""Helpers shared by the load and resource scripts: the loopback-only guard and the gateway's memory."""
import urllib.parse


def require_loopback(parser, base_url):
    """Stops with a usage error unless `base_url` points at this machine: these scripts never load others."""
    host = urllib.parse.urlparse(base_url).hostname or ""
    if not (host in ("localhost", "::1") or host.startswith("127.")):
        parser.error(f"only loopback targets (127.0.0.0/8, localhost, ::1), got {host or base_url}")


def rss_kib(pid):
    """The resident memory of process `pid` in KiB (VmRSS), or 0 when the kernel does not say."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
