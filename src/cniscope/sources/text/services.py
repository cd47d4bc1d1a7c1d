"""Service names tcpdump prints instead of port numbers (without `-nn`).

tcpdump asks the capturing machine's services database (getservbyport), so
the names are those of a usual /etc/services (netbase, or the larger Red Hat
file), plus the ones older distributions listed and Kubernetes users meet:
`otv` (8472, flannel/cilium VXLAN), `vxlan` (4789), `geneve` (6081).
A name missing here leaves the port null; the reader keeps the text in `info`.
"""

from __future__ import annotations

PORTS: dict[str, int] = {
    "tcpmux": 1, "echo": 7, "discard": 9, "systat": 11, "daytime": 13, "netstat": 15, "qotd": 17,
    "chargen": 19, "ftp-data": 20, "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "time": 37,
    "whois": 43, "tacacs": 49, "domain": 53, "bootps": 67, "bootpc": 68, "tftp": 69, "gopher": 70,
    "finger": 79, "http": 80, "www": 80, "kerberos": 88, "iso-tsap": 102, "pop3": 110, "sunrpc": 111,
    "auth": 113, "nntp": 119, "ntp": 123, "epmap": 135, "netbios-ns": 137, "netbios-dgm": 138,
    "netbios-ssn": 139, "imap2": 143, "imap": 143, "snmp": 161, "snmp-trap": 162, "xdmcp": 177,
    "bgp": 179, "irc": 194, "ldap": 389, "svrloc": 427, "https": 443, "snpp": 444,
    "microsoft-ds": 445, "kpasswd": 464, "isakmp": 500, "rtsp": 554, "submissions": 465, "urd": 465,
    "exec": 512, "biff": 512, "login": 513, "who": 513, "shell": 514, "syslog": 514, "printer": 515,
    "talk": 517, "ntalk": 518, "route": 520, "router": 520, "uucp": 540, "dhcpv6-client": 546,
    "dhcpv6-server": 547, "afpovertcp": 548, "nntps": 563, "submission": 587, "ldaps": 636,
    "domain-s": 853, "rsync": 873, "ftps-data": 989, "ftps": 990, "telnets": 992, "imaps": 993,
    "pop3s": 995, "socks": 1080, "openvpn": 1194, "ms-sql-s": 1433, "ms-sql-m": 1434,
    "ingreslock": 1524, "l2tp": 1701, "pptp": 1723, "radius": 1812, "radius-acct": 1813,
    "nfs": 2049, "etcd-client": 2379, "etcd-server": 2380, "mysql": 3306, "ms-wbt-server": 3389,
    "svn": 3690, "vxlan": 4789, "sip": 5060, "sip-tls": 5061, "xmpp-client": 5222,
    "xmpp-server": 5269, "postgresql": 5432, "mdns": 5353, "amqp": 5672, "geneve": 6081,
    "x11": 6000, "sun-sr-https": 6443, "ircd": 6667, "afs3-fileserver": 7000, "http-alt": 8080,
    "webcache": 8080, "tproxy": 8081, "otv": 8472, "jetdirect": 9100, "git": 9418, "zabbix-agent": 10050,
    "zabbix-trapper": 10051, "memcache": 11211, "hkp": 11371, "bacula-dir": 9101, "bacula-fd": 9102,
    "bacula-sd": 9103, "nut": 3493, "redis": 6379, "mongodb": 27017, "kerberos-adm": 749,
    "sane-port": 6566, "iax": 4569, "zope-ftp": 8021, "iprop": 2121, "gsigatekeeper": 2119,
    "gris": 2135, "cfengine": 5308, "puppet": 8140, "nrpe": 5666, "nsca": 5667,
}
