"""The only part of bpcheck that imports or calls an implementation under test, and the wire to it.

    protocol   the frames: JSON headers and raw array bytes, validated on arrival; no pickle
    worker     the process that imports the implementation and serves calls (run as a module)
    client     the judge's side: start, call, time out, kill, replace a worker; its containment

The judge (checks, oracles, tolerances, verdicts, reports) runs in a process
that never imports the implementation; the worker never sees any of it.
"""
