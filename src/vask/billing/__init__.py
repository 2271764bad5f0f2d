"""Accounts, plans and per-broadcast metering: what makes Vask a metered service.

- ``plans``: the Plan and Account models, the default plans, calendar months (UTC).
- ``base``: the BillingStore interface (plans, accounts, the usage ledger); ``sqlite``, ``postgres`` and
  ``memory`` implement it next to the app store, in the same database.
- ``counters``: the UsageCounters interface that quota checks read, and its in-process implementation.
- ``meter``: the hot-path object: counts broadcasts, checks quotas in memory, flushes the ledger.
- ``statement``: bill arithmetic and usage reports; ``calc``: per-broadcast vs per-message comparison.
"""
