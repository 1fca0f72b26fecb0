"""The edges: each function's HTTP handler (``webhook``, ``redrive``) over the shared HTTP edge
(``http``), and the operator's command line (``cli``). They turn requests and commands into use
case calls; composition (which adapters, which settings) is ``p0_receiver.bootstrap``'s.
"""
