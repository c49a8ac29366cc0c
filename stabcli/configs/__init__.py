"""Finding Adam's betas in the files where people keep them (configs and checkpoints)."""
