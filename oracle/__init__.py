"""oracle: the oracles that judge an implementation of the contract (torch, finite differences, adjoint identities) and the ``bpcheck`` command line."""
