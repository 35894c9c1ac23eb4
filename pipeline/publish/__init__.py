"""Publishing: the ACMMG category folder, its DGL graph file and the transport to targets."""
