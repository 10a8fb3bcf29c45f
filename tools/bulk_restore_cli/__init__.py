"""bulk-restore's command line and everything that runs beside it, outside Lambda.

- `cli`: the `bulk-restore` command;
- `client/`: the client commands (configure, create-job, status, jobs, objects, cancel, watch);
- `local/`: the local stack, the functions of `bulk_restore` on an emulated AWS;
- `demo`: a bulk restore end to end on the local stack;
- `bench/`: the benchmarks behind `make bench` and BENCHMARKS.md.

None of it is deployed: the functions' package is `bulk_restore` alone (template.yaml's CodeUri, src/).
"""
