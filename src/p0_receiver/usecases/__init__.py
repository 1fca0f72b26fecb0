"""The use cases: deliver (the webhook's), release, repair (the redrive's), doctor, and the read
side's questions (``usecases.audit``). Each works through the ports (``p0_receiver.ports``) on
the core's rules; none imports an adapter or an entrypoint.
"""
