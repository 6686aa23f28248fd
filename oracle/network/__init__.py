"""``bpcheck verify-network``: a student's whole model, checked end to end and layer by layer.

    records     the layer calls the worker recorded, as the contract ops' arguments and results (``LayerCall``)
    objects     a layer object's record (``--style layers``) as the contract op's call
    layers      each layer's forward and backward judged on what actually reached it; the first broken layer
    end_to_end  the model's parameter gradients vs central differences of its own loss
    isolate     the broken layer's smallest configuration that fails on its own (the per-op checks, shrunk)
    report      the per-layer table, the explanation, the heat map
    cli         the subcommand

The model runs only in its worker (``oracle.untrusted.network``); nothing here imports it.
"""
