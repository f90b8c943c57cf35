# The Rasa server (deploy/cluster.yml: rasa). Python 3.10 and Rasa 3.6 only, our plugins, the
# trained model (`make model` first) and the cluster's endpoints (Redis lock store).
#   docker build -f deploy/rasa.Dockerfile -t hotline-rasa .
# No secret is baked in: the keyring files come mounted at run time (HOTLINE_KEYS_DIR).
FROM python:3.10-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RASA_TELEMETRY_ENABLED=false \
    TF_CPP_MIN_LOG_LEVEL=3 \
    HOME=/tmp \
    HOTLINE_KEYS_DIR=/run/secrets

WORKDIR /app
COPY requirements/rasa.txt requirements/rasa.txt
RUN pip install -r requirements/rasa.txt

# What the Rasa process imports or reads at run time (rasa_plugins/, hotline/ with the country
# and danger lists it loads), its channel and endpoint files, and the model.
COPY rasa_plugins/ rasa_plugins/
COPY hotline/ hotline/
COPY content/countries.yml content/countries.yml
COPY nlu_data/country_lookup.yml nlu_data/danger_lexicon.yml nlu_data/verify.yml nlu_data/
COPY credentials.yml credentials.yml
COPY deploy/rasa/endpoints.yml deploy/rasa/endpoints.yml
COPY models/hotline.tar.gz models/hotline.tar.gz

# Files belong to root and are read-only for the server, which runs as its own user.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin hotline
USER 10001
EXPOSE 5005
CMD ["python", "-m", "rasa_plugins.serve", "--enable-api", "-i", "0.0.0.0", "-p", "5005", \
     "-m", "models/hotline.tar.gz", "--endpoints", "deploy/rasa/endpoints.yml", "--credentials", "credentials.yml"]
