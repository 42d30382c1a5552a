# conf: owned by its folder (see README.md there)
