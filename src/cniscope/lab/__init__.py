"""The lab: small clusters of network models built from Linux network namespaces.

spec (what the cluster holds) -> builders.plan_lab (a list of plain-data
steps, see plan) -> executor.apply (the only module that changes the system,
through cniscope.host). cluster.Lab is the running lab (up, exec, curl, fault,
down); state keeps it on disk and reaps labs whose owner is gone; record is
`--via lab:NAME` and records pcapng per node while an action runs;
faults and scenarios are tables of what can be broken and recorded; cli is
`cniscope lab ...`. Facts the design rests on: ../shared/design/LAB-NOTES.md.
"""
