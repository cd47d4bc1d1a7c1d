"""Service names tcpdump prints instead of port numbers (without `-nn`), back to their ports.

tcpdump names a port with the capturing machine's services database
(getservbyport), which on Debian and Ubuntu is netbase's /etc/services: the
whole of it ships here as data (`services.tsv`). Other distributions and
older releases list a few more names that Kubernetes users meet (Red Hat's
larger file, `otv` for 8472 ...): `OTHER_SYSTEMS`. A name that stands for two
different ports (`dicom`: 104 and 11112) cannot be turned back and leaves the
port null; the reader keeps the name in `info`.
"""

from __future__ import annotations

from importlib.resources import files

# names other systems' services files give (Red Hat, older netbase, IANA names netbase leaves out)
OTHER_SYSTEMS: dict[str, int] = {
    "www": 80, "otv": 8472, "vxlan": 4789, "geneve": 6081, "http-alt": 8080, "webcache": 8080, "tproxy": 8081,
    "etcd-client": 2379, "etcd-server": 2380, "sun-sr-https": 6443, "jetdirect": 9100, "zabbix-agent": 10050,
    "zabbix-trapper": 10051, "memcache": 11211, "redis": 6379, "mongodb": 27017, "puppet": 8140, "iax": 4569,
    "nrpe": 5666, "nsca": 5667, "ms-wbt-server": 3389, "ms-sql-s": 1433, "ms-sql-m": 1434, "l2tp": 1701,
    "domain-s": 853, "ircd": 6667, "afs3-fileserver": 7000, "mdns": 5353, "amqp": 5672, "xmpp-client": 5222,
    "xmpp-server": 5269, "pptp": 1723, "irc": 194, "sip": 5060, "sip-tls": 5061, "svn": 3690, "nfs": 2049, "radius": 1812, "radius-acct": 1813,
}


def _load() -> dict[str, int]:
    ports: dict[str, set[int]] = {}
    for line in files(__package__).joinpath("services.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            name, port, _protocols = line.split("\t")
            ports.setdefault(name, set()).add(int(port))
    table = {name: port for name, port in OTHER_SYSTEMS.items() if name not in ports}
    table.update({name: next(iter(found)) for name, found in ports.items() if len(found) == 1})
    return table


PORTS: dict[str, int] = _load()
