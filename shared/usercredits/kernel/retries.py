"""How often a write planned from a read is redone when a concurrent change refused its condition."""

#: Attempts of an optimistic write (read, decide, conditional write) before the caller is told to retry (409): each
#: failure means another write landed in between, so a few attempts are enough even for a hot item.
OPTIMISTIC_ATTEMPTS = 5
#: Attempts of a spend or a hold refused while lots past their expiry or lapsed holds were still counted: they are
#: cleared (or found cleared by another caller) and the request is tried again; a second refusal is the real answer.
CATCH_UP_ATTEMPTS = 3
