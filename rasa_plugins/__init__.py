"""Code the Rasa server (Python 3.10) loads: NLU components named in config.yml and the
bounded tracker store named in endpoints.yml. Shared logic lives in `hotline/`."""
