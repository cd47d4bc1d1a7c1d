"""The commands that are not a package's own (`lab`, `capture`, `models` have theirs): one module each."""
