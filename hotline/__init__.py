"""Shared, dependency-light logic used by both the Rasa server (Python 3.10) and the
modern services (Python 3.11+): content rendering, SMS length rules, text normalising,
country and report-code recognition. Keep it importable on Python 3.10 with only PyYAML."""
