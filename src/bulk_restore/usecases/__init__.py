"""Use cases: create a job, plan it, restore its objects, complete them, announce progress."""
