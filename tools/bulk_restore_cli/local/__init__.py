"""The local stack: the same handlers on an embedded AWS emulator (moto), driven like AWS drives them."""
