"""Domain errors every layer may raise and every interface turns into its own answer (the API:
access.api's exception handler; pages and the admin: a message; commands: a CommandError)."""


class StateConflict(Exception):
    """What was asked cannot be done to the object as it is now (the API answers 409 with the message)."""
