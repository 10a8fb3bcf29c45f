"""Benchmarks: AWS requests, cost and throughput per object, at scale.

``python -m bulk_restore_cli.bench`` (``make bench``) runs five parts, each in a fresh process, and
writes BENCHMARKS.md and bench-results/*.json:

1. cost      a job of N archived objects through the real handlers on moto: every AWS request
             counted (botocore hooks), DynamoDB capacity units, Lambda invocations, messages,
             dollars per million objects from prices.json;
2. planner   generated manifests of 1 and 10 million lines through the real planner on fast
             in-process fakes: lines per CPU-second, peak memory, checkpointed steps;
3. completion  restore-completed events through the real completion handler on fast fakes;
4. issuance  the real restore workers and pacer against a fake S3 that throttles above the
             account's 1,000 restore requests per second;
5. latency   the local stack: last restore completed -> Complete event published.
"""
