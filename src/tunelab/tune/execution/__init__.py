"""Where trials run: the objective (one trial = one config + callbacks), packs of trials on one
device, worker processes and hosts, trial owners and heartbeats, cluster job files."""
