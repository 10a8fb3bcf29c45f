"""Shared test support: the stack on moto, event samples, fault injection, the ledger of a job."""
