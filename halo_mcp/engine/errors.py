"""Engine errors, each with a message that says what to do next."""


class EngineError(Exception):
    """Base class for expected engine failures."""


class NoApiKeyError(EngineError):
    """No LLM credentials: set OPENAI_API_KEY (or pass --api-key / --base-url)."""


class ProviderError(EngineError):
    """The LLM provider failed in a way retries could not fix."""


class UnknownRunError(EngineError):
    """A run id that is not in the run store."""


class UnknownFindingError(EngineError):
    """A finding id that is not in the run store."""
