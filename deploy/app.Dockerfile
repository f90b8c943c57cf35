# One image for the action server, the channel gateway, the staff console and the jobs
# (deploy/cluster.yml: image app); the command chooses the role:
#   python -m actions.serve --port 5055 | python -m channels.app | python -m console.app
#   python -m reports.jobs run          | python -m reports.db upgrade (migrations, once)
#   docker build -f deploy/app.Dockerfile -t hotline-app .
# No secret is baked in: the keyring files come mounted at run time (HOTLINE_KEYS_DIR), each
# role only its own; passwords come from the environment.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PTB_TIMEDELTA=true \
    HOME=/tmp \
    HOTLINE_KEYS_DIR=/run/secrets

WORKDIR /app
COPY requirements/app.txt requirements/app.txt
RUN pip install -r requirements/app.txt

# The project's packages and what they read at run time: content/ (answers, labels), the
# country and danger lists in nlu_data/, the console's templates, the migrations.
COPY hotline/ hotline/
COPY reports/ reports/
COPY actions/ actions/
COPY channels/ channels/
COPY console/ console/
COPY content/ content/
COPY nlu_data/ nlu_data/
COPY alembic.ini alembic.ini

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin hotline
USER 10001
EXPOSE 5055 8000 8100
CMD ["python", "-m", "channels.app"]
