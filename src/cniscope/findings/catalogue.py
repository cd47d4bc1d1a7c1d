"""The words findings use: what each kind means, how it is found, and what to check next.

Detectors take their next steps from `NEXT` (`say`), and the caveats an
explanation adds from `NOTES` (`note`); a finding carries the keys of both
(`Finding.key`, `Evidence.notes`), which is what tests and tools match on,
never the sentences. docs/findings.md is generated from this module
(`python -m cniscope.findings.catalogue > docs/findings.md`; a test keeps the
two equal). Titles and explanations are built by the detectors from the
finding's evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

from cniscope.results import FindingKind

NEXT: dict[str, str] = {
    # drop: what follows a last sighting, by the place it vanished after (findings/losses.py)
    "drop.tunnel_out": "The tunnel device took the packet but no envelope left the NIC: check the VTEP's neighbour and FDB "
                       "entries for the destination (ip neigh / bridge fdb show dev {iface}), the route to the remote "
                       "node, the NIC's MTU, the tunnel's checksum offload (the known VXLAN problem of flannel and "
                       "Calico: ethtool -K {iface} tx-checksum-ip-generic off), and OUTPUT/POSTROUTING rules that match "
                       "the tunnel's UDP port.",
    "drop.bridge_out": "The bridge did not hand the frame to a port: check the pod's veth is in the bridge and up, the "
                       "bridge's FDB (bridge fdb show), hairpin mode when a pod calls itself through a Service, and "
                       "bridge-level filtering (br_netfilter, ebtables).",
    "drop.nic_out": "The packet left this node but never reached the destination node: check the underlay between them "
                    "(switch, security groups, MTU of every link), the next hop (ip route get on the sender) and its MAC.",
    "drop.forward": "The node received the packet but never sent it on: check the FORWARD chain (iptables -L FORWARD -v -n, "
                    "nft list ruleset), the route to the destination (ip route get {dst} from {src} iif {iface}), "
                    "net.ipv4.ip_forward, and strict reverse-path filtering (net.ipv4.conf.{iface}.rp_filter=1 drops "
                    "packets whose way back leaves by another interface).",
    "drop.hairpin": "The pod called itself through a Service: after DNAT the frame must go back out of the bridge port it "
                    "came in by, which a Linux bridge does only with hairpin mode on that port (bridge -d link show dev "
                    "{iface}: hairpin on; the CNI bridge plugin's hairpinMode).",
    "drop.decap": "The envelope reached the node but nothing came out of the tunnel device: check that the VXLAN/Geneve "
                  "device exists with that VNI and port (ip -d link), INPUT rules for the UDP port, and the envelope's "
                  "checksum and size.",
    "drop.model": "look at what sits between these two points: iptables/nftables drops, routes, bridge port state, tc/eBPF "
                  "programs",
    "deviation": "check the routes and bridge ports on that node, or whether the model is right (--model)",
    "unanswered.tcp": "Follow the SYN: where it was last seen is where to look next (is anything listening on the server, "
                      "does the SYN reach the server's node, does the SYN-ACK leave it?).",
    "unanswered.dns": "Check that the DNS pods run and are endpoints of the DNS service, and follow the query to the DNS "
                      "pod's node: if the answer leaves the DNS pod, find the hop where it stops.",
    "unanswered.icmp": "Follow the echo request: the hop after its last sighting is where it (or the reply) is lost; ICMP "
                       "may also be filtered on purpose.",
    "unanswered.arp": "Is {addr} up and on the same link? For a gateway answered by proxy ARP (calico's 169.254.1.1), check "
                      "proxy_arp on the host veth and that the node has a route out another interface.",
    "retransmission": "Look at the hop after the originals' last sighting: a drop there (or of the ACKs on the way back) "
                      "explains the re-sends; if every original arrived, the ACKs were lost or late.",
    "reset.renewed": "Look for conntrack flushes or restarts on that node (conntrack -S, kube-proxy restarts), and timeouts.",
    "reset.refused": "Check that something listens on {endpoint} (ss -ltn where it runs) and the Service's targetPort.",
    "reset.untranslated": "Check that replies go back through the node that did the DNAT (br_netfilter on for bridged pods, "
                          "conntrack).",
    "reset.other": "If the reset is unexpected: whoever sent it had no state for the connection (restart, conntrack "
                   "flushed, timeout).",
    "mtu.frag_needed": "Compare the MTUs along the path (ip link on each node, tunnel devices, pod eth0): pod MTU + tunnel "
                       "overhead must not exceed the NIC's. Make sure {message} is not filtered on the way back.",
    "mtu.mss": "Set the pods' MTU to {mtu} (the CNI's MTU setting: calico's veth_mtu, flannel's subnet.env), or clamp the "
               "MSS (iptables -t mangle ... TCPMSS --clamp-mss-to-pmtu); ip link show on the node gives the real MTUs.",
    "mtu.black_hole": "Compare the MTU of every link after this point (ip link: NIC, tunnel device, underlay, the next "
                      "node's NIC); lower the pods' MTU or clamp the MSS to the smallest, and let ICMP frag-needed through.",
    "nat": "Nothing to fix: a Service (DNAT) or masquerade (SNAT) at work. The conntrack table of that node (conntrack -L) "
           "holds the translation.",
    "tunnel": "Nothing to fix. Packets through it must fit the tunnel's MTU (the NIC's minus the envelope).",
    "missing_reverse_nat": "The replies bypassed the conntrack entry of the DNAT. Client and endpoint on one node's bridge: "
                           "load br_netfilter and set net.bridge.bridge-nf-call-iptables=1 (the DNAT'd packet is bridged, "
                           "not routed); a pod calling itself: hairpin mode on its bridge port. Otherwise: do the replies "
                           "return by another path, or was conntrack flushed?",
    "missing_snat": "Check the node's masquerade rule for traffic leaving the cluster range (flannel --ip-masq, calico "
                    "natOutgoing, ip-masq-agent) in iptables -t nat -L POSTROUTING -v -n.",
    "asymmetric_path": "Check `ip route get {remote}` on {node} and net.ipv4.conf.{{all,{iface}}}.rp_filter (1 = strict "
                       "drops these packets; 2 = loose accepts them); fix the route (the CNI's routes for that pod CIDR: "
                       "tunnel or direct, the same both ways) or use loose mode.",
    "route": "On {node}: ip route get {dst} (it must say via {owner}'s address, or dev <tunnel>); restore the route (the "
             "CNI's route agent: flanneld, BIRD/calico-node, kube-router) and check its logs.",
    "checksum_offload": "Nothing to fix while the conversations go on. If packets with bad checksums go unanswered, turn the "
                        "offload off on the device that sends them (ethtool -K <device> tx off) and capture again.",
    "checksum_offload.tunnel": "On {node}: ethtool -K {device} tx-checksum-ip-generic off (flannel and Calico do this "
                               "themselves in recent versions); then capture again: the envelopes must show a correct or "
                               "zero UDP checksum.",
    "clock_skew": "Check NTP/chrony on the nodes (chronyc tracking) and their time zones (tcpdump -tttt prints dates; "
                  "TZ=UTC tcpdump ... makes pasted captures comparable).",
}


# Caveats an explanation adds, by key (a finding lists the keys it used in `Evidence.notes`).
NOTES: dict[str, str] = {
    "envelopes_filtered": "But packets also arrived on this node's tunnel device without their envelope being captured "
                          "on the NIC: the capture seems to leave envelopes out (a port filter excludes the tunnel's "
                          "UDP), so this needs a capture of the tunnel's port on the NIC to confirm.",
    "kind_never_seen": "No such sighting appears anywhere in this node's capture, though: if the capture had a filter "
                       "that left them out (a port filter excludes a tunnel's envelopes), this is not a drop.",
    "model_agrees": "The model's expected path agrees ({path}).",
    "mac_unowned": "It was sent to {mac}, a MAC no captured node sends from and no ARP in the capture names (ip neigh "
                   "on the node tells).",
    "mac_owned": "It was sent to {mac}, which belongs to {owner}.",
    "mac_unrecorded": "The capture does not record the destination MAC it was sent to (tcpdump -i any keeps only the "
                      "source MAC): tcpdump -i {iface} -e on that node shows it.",
    "one_way": "The capture shows no packet at all going the other way around that time: if it was taken with a "
               "one-way filter (src/dst host ...), replies could not appear in it.",
    "sizes_bounded": "(The capture shows no IP lengths, only the payload's: sizes are bounded by the smallest and "
                     "largest headers; tcpdump prints IP lengths with -v, frame lengths with -e.)",
    "recovered": "The conversation went on: a loss it recovered from.",
    "translated_back": "The replies were translated back ({after} -> {before}), first at {where}.",
    "unrecorded.node": "the node (name each file: node3=capture.pcap)",
    "unrecorded.iface": "the interface (tcpdump -i any, version 4.99 or later, prints it; or one capture per interface)",
}


def say(key: str, **fields: object) -> str:
    """The next step `key`, its {fields} filled in."""
    return NEXT[key].format(**fields)


def note(key: str, **fields: object) -> str:
    """The caveat `key`, its {fields} filled in."""
    return NOTES[key].format(**fields)


@dataclass(frozen=True)
class Kind:
    kind: FindingKind
    severity: str
    means: str
    found_by: str
    check_next: str


INTRO = """\
# Findings

`cniscope analyze` ends with findings: typed results (`cniscope.results.Finding`)
that say what went wrong and where. Each has a `kind`, a `severity`
(`info`, `warning`, `error`), a one-line `title`, a plain `explanation` of
what the packets show, a `next_step` (what to check) and its `key` (the
case of its kind, listed below: what tools and tests match on, never the
words), the `node` and `iface`
where it happens, the sightings that prove it (`journeys`: packets followed
hop by hop, `flows`: conversations, `rows`: sightings in the packet table),
and its `evidence`, typed: packet counts (as the conversation counts them),
sizes, MTUs, tunnel overhead, MSS, the device concerned, the places
(`node interface direction`), addresses, the destination MAC and its owner,
the gaps between re-sends, a clock offset, the node a lost packet was
heading for, the translation, and the `notes` (caveats, listed below) the
explanation adds. Places are always named; where
the capture did not record the node or the interface, the finding says so
and how to record it.

`--fail-on info|warning|error` makes `cniscope analyze` exit with status 1
when a finding of that severity or worse is found (see `cniscope.errors`).

This page is generated from `src/cniscope/findings/catalogue.py`
(`python -m cniscope.findings.catalogue > docs/findings.md`).

## How the detectors work

Three stages, each pure (`src/cniscope/findings/`): the *facts* every
detector reads, computed once (`facts.py`: coverage, each node's own
addresses, its pods', interface roles, MAC owners, conversations seen
untranslated); the *losses* (`losses.py`: where packets vanished, by what
each interface is for, and against the inferred model's expected paths);
then every detector, a function `(facts, losses) -> Found` (findings, and the
lost packets they explain), in any order. A detector that explains a loss
precisely (an MTU black hole, an asymmetric route, a wrong next hop) claims
it; `detect()` gathers the claims and only then reports the unclaimed losses
as `drop`, so one loss is reported once. The detectors follow the protocols,
never particular addresses or files.

Scale: `unanswered`, `checksum_offload`, `tunnel` and the MSS check read
every sighting; the path detectors read the journeys materialised for the
report (the first `--max-journeys`, 20,000 by default).
`python benchmarks/findings.py` measures the detectors' share of `analyze`.

## What "the capture covered it" means

A detector claims that a packet is missing somewhere only when the capture
could have shown it there:

- A node's capture covers *every interface* when it was taken with
  `tcpdump -i any` (Linux cooked link type, or tcpdump text that names the
  interface on each line); otherwise it covers the interfaces it shows.
- The node must still have been capturing a little after the packet (1 ms
  on the same node, 50 ms for another node), so the end of a capture is
  never a loss; a re-send near the end counts only beside packets of the
  same conversation confirmed lost at the same place.
- Interfaces get their role (node NIC, pod bridge, pod veth, tunnel device)
  from the inferred model's name patterns, else from any model's.
- A node's own addresses are learned from the packets it originates (first
  seen going out of a device that is not a pod's veth), from the ARP
  requests and replies it sends that way (their sender address; not
  gratuitous ARP, which may announce a virtual address), from the envelopes
  it sends and opens (their outer source and destination), and from
  `--cluster`; a pod's from its veth. A packet for the node itself is
  delivered, not lost.
"""

KINDS: tuple[Kind, ...] = (
    Kind(FindingKind.DROP, "error; warning or info when the capture may have filtered the evidence",
         "a packet was seen at one hop and never at the next hop it must take, although the capture covered that hop.",
         "the last sighting of each journey, and what must follow it (`findings/losses.py`, table `NEXT`): out of a "
         "tunnel device → the envelope out of the NIC; into the node from a pod, a bridge, a NIC or a tunnel → out of "
         "another interface (unless addressed to the node); out of a bridge device → out of a bridge port (a pod's "
         "veth); out of a NIC towards a node that was also captured → into that node. Out of a pod's veth means "
         "arrived. One finding per place and conversation, with every lost packet; after a NIC it names the "
         "destination MAC and who owns it. Where the model's expected path (`models/roles.py`) also misses a hop "
         "for the packet it says so; the model's misses nothing else explains are reported per place. If the "
         "capture evidently leaves envelopes out (`tcpdump -i any port 53` excludes UDP 8472), the finding is a "
         "warning, or information when no envelope appears at all.",
         "the finding's `next_step` depends on the place: FORWARD chain, routes and `rp_filter` after a NIC; "
         "FDB/neighbour entries, MTU and offloads after a tunnel device; hairpin mode when a pod called itself "
         "through a Service; the underlay between two nodes."),
    Kind(FindingKind.ROUTE, "error",
         "a node sends packets for another node's pods to a MAC that is not that node's: its route for that pod CIDR "
         "leads elsewhere, typically to the default gateway because the route is missing.",
         "packets for a pod address (seen on its node's veths, or in `--cluster`'s pod CIDRs) leaving a NIC "
         "unencapsulated, whose destination MAC is not one the owning node's NIC sends from; ARP in the capture "
         "names the MAC's owner. Needs link-layer headers (pcap, `tcpdump -e`). Claims those packets' losses.",
         "`ip route get <pod address>` on the sending node; the CNI's route agent."),
    Kind(FindingKind.UNANSWERED, "error; warning for a one-way capture",
         "requests without any reply anywhere in the capture, a reply being sent by the other end: TCP SYN (a "
         "SYN-ACK, a RST, or any packet back), DNS query (an answer with the same id), ICMP echo (a reply with the "
         "same id and sequence), ARP request (a reply from the asked address; probes and gratuitous ARP excluded).",
         "per conversation, counting every request as the conversation does (retries included). A conversation "
         "whose every request was followed by nothing for 0.2-10 s (the capture stopped, or segments were glued) is "
         "not reported. When the capture shows no packet at all going the other way around that time (a `dst host "
         "X` filter), the finding is a warning and says so. ICMP errors that quote the conversation are named. "
         "Requests answered from another address than the one called are `missing_reverse_nat`, not unanswered.",
         "the hop after the request's last sighting; listeners, Service endpoints, DNS pods; proxy ARP for a gateway."),
    Kind(FindingKind.RETRANSMISSION, "warning; info for fewer than 3 re-sends in a conversation that went on",
         "the sender re-sent sequence space it had already sent: a new packet, never a copy of one packet seen on "
         "several interfaces (those are one journey). The seed capture shows each packet three times and has none.",
         "`flows` links each re-send to its original: the same sequence number, length and SYN/FIN (a re-sent SYN "
         "loses its ECN flags), or the tail of a segment (`seq 1389:2395` after `seq 1:2395`). One finding per "
         "conversation, unanswered SYNs included, with the gaps between sends and what they say (the SYN timer: 1 s, "
         "doubling; a retransmission timeout: 200 ms or more, doubling; faster: a fast retransmit after duplicate "
         "ACKs), where the originals were last seen, and whether SYN-ACKs were seen.",
         "the hop after the originals' last sighting, or the ACKs."),
    Kind(FindingKind.RESET, "warning; info for an abortive close after data",
         "a TCP RST; the finding says who sent it (client or server) and on which leg of a NAT it travelled.",
         "the RST journeys of each conversation. A refusal (server, no data yet), a client resetting a translated "
         "leg (a reply that missed its reverse NAT), and a connection translated anew half-way (a new SNAT port for "
         "the same server: conntrack lost its entry) are told apart.",
         "the listener and targetPort; reverse NAT; conntrack flushes."),
    Kind(FindingKind.MTU, "warning; error for a black hole",
         "packets too big for their path.",
         "(1) ICMP fragmentation needed / packet too big (`icmp_mtu`): who reported which MTU for which "
         "conversation. (2) A SYN seen on a tunnel device (tunl0, flannel.1, vxlan.calico, cilium_vxlan ...) "
         "announcing an MSS above the device's MTU less 40, the device's MTU being a 1500-byte underlay's less the "
         "envelope (VXLAN/Geneve 50, IPIP 20, flannel UDP 28), even for a single SYN; else a TCP connection through "
         "a tunnel whose MSS (the smaller of both ends') + 40 + the envelope exceeds 1500. (3) A packet bigger than a "
         "tunnel device's MTU that goes into it and never leaves the node encapsulated (error when smaller packets, "
         "a re-send of its data among them, passed); the finding states the size, the tunnel's MTU and overhead. "
         "(4) A PMTU black hole: at one place every packet from some size up vanishes while smaller ones pass. (3) "
         "and (4) claim those losses from `drop`. A size is the IP packet's (the envelope's when tunnelled): from "
         "the IP header (pcap, tcpdump `-v`), else the frame length less the link header (tcpdump `-e`). Plain "
         "`tcpdump -nn` text shows only payload lengths: sizes are then bounded by the smallest and largest headers, "
         "and a black hole is claimed only if the largest packet that passed is smaller than the smallest that "
         "vanished whatever the headers were. Packet sizes are otherwise not compared with interface MTUs: "
         "segmentation and receive offloads (GSO/GRO) show packets far larger than the link on both ends.",
         "MTUs along the path (pod eth0, tunnel device, NIC, underlay); pod MTU = NIC MTU - overhead; MSS clamping; "
         "let ICMP type 3 code 4 through."),
    Kind(FindingKind.NAT, "info",
         "a DNAT/SNAT rewrite between two sightings of the same packet (the replies' reverse translation folded "
         "into the same finding). Multicast and broadcast packets are not taken for rewrites.",
         "the changes between a journey's hops.",
         "nothing to fix; `conntrack -L` holds the translation."),
    Kind(FindingKind.TUNNEL, "info",
         "packets travel between two nodes inside an envelope (VXLAN, Geneve, IPIP, flannel UDP).",
         "every envelope in the capture, whether or not the inner packet was also seen on a tunnel device: one "
         "finding per envelope kind and pair of endpoints (both ways), with the VNI, the port and the envelope's "
         "overhead.",
         "nothing to fix; packets through it must fit the tunnel's MTU."),
    Kind(FindingKind.MISSING_SNAT, "warning",
         "a pod address leaves a node's NIC towards an address outside the cluster.",
         "reported only when `--cluster` gives the pod (and service) ranges, and not for models that advertise pod "
         "addresses beyond the nodes (BGP).",
         "the masquerade rule (flannel `--ip-masq`, calico `natOutgoing`, ip-masq-agent)."),
    Kind(FindingKind.MISSING_REVERSE_NAT, "error",
         "the client called a service address, and the reply reached it still from the endpoint's address; the "
         "client rejects it (RST, ICMP port unreachable). Typically br_netfilter off on a node where client and "
         "endpoint share a bridge, or hairpin mode off for a pod calling itself.",
         "a conversation whose legs show the DNAT and whose reply is delivered (out of the client's veth, or out of "
         "the NIC of the node that did the DNAT) untranslated; or, seen at one point (a pod's veth, without `-i "
         "any`), requests to an address that never answers and replies to the same client port from another "
         "address answering them (the same DNS ids, a SYN-ACK acknowledging the SYN): the two conversations are "
         "joined in one finding, and the requests are not called unanswered.",
         "`net.bridge.bridge-nf-call-iptables=1`; hairpin mode; asymmetric return paths; conntrack."),
    Kind(FindingKind.ASYMMETRIC_PATH, "warning; error when the arriving packets are dropped or re-sent",
         "on one node, packets from an address arrive by one way while packets to it (or the node's ARP requests "
         "for it) leave by another. A way is a NIC or a tunnel device: replies arriving on `tunl0` while the "
         "requests leave by the NIC is one. With strict `rp_filter=1` the kernel drops the arriving packets; those "
         "losses are reported here rather than as `drop`.",
         "per node and address, at the envelope's level (node addresses, by the NIC) and the packet's (by the tunnel "
         "device when it went through one); `-i any` captures only.",
         "`ip route get ADDR` on the node, `rp_filter` (2 = loose)."),
    Kind(FindingKind.CLOCK_SKEW, "info",
         "two nodes' clocks (or two pasted segments' clocks) differ by more than 1 ms, as estimated from the packets "
         "(method, samples and uncertainty given); timestamps were corrected. A whole number of half hours is "
         "named as a time-zone difference.",
         "the clock alignment of the nodes (`clocks.py`); segments of a pasted text that the reader tells apart are "
         "aligned as their own parts.",
         "NTP/chrony, time zones."),
    Kind(FindingKind.CHECKSUM_OFFLOAD, "info; warning for envelopes whose conversation stalls",
         "bad TCP/UDP checksums. Captured on the node that sent them, an artefact of checksum offload (the capture "
         "sees the packet before the NIC fills the checksum in), not a fault; received across veths and virtual "
         "links, expected. One finding for the whole capture, saying which packets were sent and which received. "
         "Envelopes (VXLAN) with a bad *outer* UDP checksum whose inner conversation is re-sent or unanswered are "
         "the known VXLAN checksum-offload problem of flannel and Calico: a warning naming the tunnel device, with "
         "the fix (`ethtool -K <device> tx-checksum-ip-generic off`).",
         "tcpdump text (`cksum 0x.. (incorrect -> ..)`, `[bad udp cksum ..]`, on the envelope too: "
         "`outer_l4_csum_bad`) and, for pcap and pcapng, the decoder's own check of every TCP/UDP segment captured "
         "whole.",
         "nothing for the sender side; for stalled envelopes, the offload of the tunnel device."),
    Kind(FindingKind.DEVIATION, "warning",
         "the path differs from every path the inferred model has (an unexpected hop, or hops in another order).",
         "`cniscope.models.roles.compare`, reported by `findings/paths.py`.",
         "the routes and bridge ports of that node, or whether the model is right (`--model`)."),
)


def cases(kind: FindingKind) -> list[str]:
    """The keys (`Finding.key`) a finding of `kind` can carry."""
    return [key for key in NEXT if key.split(".")[0] == kind.value]


def markdown() -> str:
    """docs/findings.md."""
    parts = [INTRO, "## Kinds\n"]
    for k in KINDS:
        keys = ", ".join(f"`{key}`" for key in cases(k.kind))
        parts.append(f"### `{k.kind.value}` ({k.severity})\n**Means**: {k.means}\n**Found by**: {k.found_by}\n"
                     f"**Check next**: {k.check_next}\n**Cases** (`key`): {keys}\n")
    parts.append("## Notes\n\nCaveats an explanation adds; a finding lists the ones it used in `evidence.notes`.\n")
    parts.append("\n".join(f"- `{key}`: {text}" for key, text in NOTES.items()) + "\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(markdown(), end="")
