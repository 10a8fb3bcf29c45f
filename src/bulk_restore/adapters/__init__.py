"""One adapter per AWS service: the only modules that talk to AWS."""
