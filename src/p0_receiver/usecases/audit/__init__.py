"""The read side: the operator's questions of the audit log (views), the integrity sweep
(verify) and the access review (review), all through the ``AuditReader`` port.
"""
