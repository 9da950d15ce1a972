#!/bin/sh
# Starts SeaweedFS servers with their security on, for docker-compose.yml (mounted into the
# chrislusf/seaweedfs image) and for the tests (tests/servers.py SeaweedCluster runs this file).
#
#   entrypoint.sh tls                        make the gRPC certificate in SEAWEEDFS_TLS_DIR (once)
#   entrypoint.sh master|volume|filer ARGS   weed master|volume|filer ARGS, JWT keys and mTLS on
#   entrypoint.sh s3 ARGS                    weed s3 ARGS, one identity; anonymous requests refused
#   entrypoint.sh buckets NAME...            create the buckets that do not exist yet
#
# Secrets come from the environment, never from a file in the repository, and a server refuses
# to start when one is missing (exit 64 and one line saying what to set):
#   SEAWEEDFS_JWT_SECRET      four JWT signing keys are derived from it (volume write and read,
#                             filer write and read), each different, so a read token never writes
#   SEAWEEDFS_WHITE_LIST      hosts or CIDRs that may call master and volume HTTP (/col/delete...)
#   SEAWEEDFS_S3_ACCESS_KEY   (s3) the identity the workers sign S3 requests with
#   SEAWEEDFS_S3_SECRET_KEY   (s3)
#   SEAWEEDFS_TLS_DIR         ca.crt, node.crt, node.key (default /etc/seaweedfs/tls)
#   SEAWEEDFS_MASTER, SEAWEEDFS_FILER   (buckets) where weed shell connects (master:9333, filer:8888)
# The non-secret settings are in security.toml next to this file.
set -eu

WEED=${WEED:-weed}
TLS_DIR=${SEAWEEDFS_TLS_DIR:-/etc/seaweedfs/tls}

fail() {
    echo "seaweedfs: $*" >&2
    exit 64
}

# need_secret NAME [MIN]: set, at least MIN characters (16), and only characters that are safe in
# a URL, a JSON string and a shell word (a random hex or base64 value is: openssl rand -hex 32).
need_secret() {
    eval "value=\${$1:-}"
    min=${2:-16}
    [ -n "$value" ] || fail "$1 is not set: give it a random value (openssl rand -hex 32)"
    [ "${#value}" -ge "$min" ] || fail "$1 is too short (${#value} characters, at least $min: openssl rand -hex 32)"
    case "$value" in
        *[!A-Za-z0-9._~+/=-]*) fail "$1 may hold only letters, digits and . _ ~ + / = - (openssl rand -hex 32)" ;;
    esac
}

derive_key() {
    printf 'storymedia-seaweedfs-%s:%s' "$1" "$SEAWEEDFS_JWT_SECRET" | sha256sum | cut -d' ' -f1
}

secure() {
    need_secret SEAWEEDFS_JWT_SECRET 32
    [ -n "${SEAWEEDFS_WHITE_LIST:-}" ] \
        || fail "SEAWEEDFS_WHITE_LIST is not set: the hosts or CIDRs of the SeaweedFS servers' network"
    [ -f ./security.toml ] || [ -f /etc/seaweedfs/security.toml ] \
        || fail "no security.toml in $(pwd) or /etc/seaweedfs: mount deploy/seaweedfs/security.toml"
    for file in ca.crt node.crt node.key; do
        [ -r "$TLS_DIR/$file" ] \
            || fail "$TLS_DIR/$file is missing: the seaweedfs-tls service makes it (entrypoint.sh tls)"
    done
    WEED_JWT_SIGNING_KEY=$(derive_key volume-write)
    WEED_JWT_SIGNING_READ_KEY=$(derive_key volume-read)
    WEED_JWT_FILER_SIGNING_KEY=$(derive_key filer-write)
    WEED_JWT_FILER_SIGNING_READ_KEY=$(derive_key filer-read)
    WEED_GUARD_WHITE_LIST=$SEAWEEDFS_WHITE_LIST
    WEED_GRPC_CA=$TLS_DIR/ca.crt
    export WEED_JWT_SIGNING_KEY WEED_JWT_SIGNING_READ_KEY WEED_JWT_FILER_SIGNING_KEY \
        WEED_JWT_FILER_SIGNING_READ_KEY WEED_GUARD_WHITE_LIST WEED_GRPC_CA
    for part in MASTER VOLUME FILER S3 CLIENT; do
        export "WEED_GRPC_${part}_CERT=$TLS_DIR/node.crt" "WEED_GRPC_${part}_KEY=$TLS_DIR/node.key"
    done
    unset SEAWEEDFS_JWT_SECRET
}

make_tls() {
    if [ -s "$TLS_DIR/ca.crt" ] && [ -s "$TLS_DIR/node.crt" ] && [ -s "$TLS_DIR/node.key" ]; then
        echo "seaweedfs: keeping the gRPC certificate in $TLS_DIR"
        return
    fi
    command -v openssl >/dev/null || fail "openssl is needed to make the gRPC certificate"
    mkdir -p "$TLS_DIR"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    (
        umask 077
        cd "$work"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
            -subj "/CN=storymedia SeaweedFS CA" -keyout ca.key -out ca.crt 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=seaweedfs" \
            -keyout node.key -out node.csr 2>/dev/null
        printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth,clientAuth" > node.ext
        openssl x509 -req -in node.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile node.ext -out node.crt 2>/dev/null
    ) || fail "openssl could not make the gRPC certificate"
    # The CA key is not kept: nothing can sign a second certificate for this cluster.
    cp "$work/ca.crt" "$work/node.crt" "$TLS_DIR/"
    cp "$work/node.key" "$TLS_DIR/node.key.new"
    chmod 0444 "$TLS_DIR/ca.crt" "$TLS_DIR/node.crt"
    chmod 0400 "$TLS_DIR/node.key.new"
    mv "$TLS_DIR/node.key.new" "$TLS_DIR/node.key"
    echo "seaweedfs: made the gRPC certificate in $TLS_DIR"
}

write_identities() {
    need_secret SEAWEEDFS_S3_ACCESS_KEY 3
    need_secret SEAWEEDFS_S3_SECRET_KEY
    # No "anonymous" identity: a request without a valid signature gets AccessDenied.
    file=$(umask 077 && mktemp)
    printf '{"identities": [{"name": "storymedia", "credentials": [{"accessKey": "%s", "secretKey": "%s"}], "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}\n' \
        "$SEAWEEDFS_S3_ACCESS_KEY" "$SEAWEEDFS_S3_SECRET_KEY" > "$file"
    unset SEAWEEDFS_S3_ACCESS_KEY SEAWEEDFS_S3_SECRET_KEY
    identities=$file
}

create_buckets() {
    master=${SEAWEEDFS_MASTER:-master:9333}
    filer=${SEAWEEDFS_FILER:-filer:8888}
    for bucket in "$@"; do
        tries=0
        until out=$(printf 's3.bucket.create -name %s\n' "$bucket" \
                    | timeout 20 "$WEED" shell -master="$master" -filer="$filer" 2>&1); do
            case "$out" in
                *"already exists"*) break ;;
            esac
            tries=$((tries + 1))
            [ "$tries" -lt 30 ] || fail "cannot create bucket $bucket: $out"
            sleep 1
        done
        echo "seaweedfs: bucket $bucket is there"
    done
}

role=${1:-}
[ $# -gt 0 ] && shift
case "$role" in
    tls)
        make_tls
        ;;
    master | volume | filer)
        secure
        exec "$WEED" "$role" "$@"
        ;;
    s3)
        secure
        write_identities
        exec "$WEED" s3 -config="$identities" "$@"
        ;;
    buckets)
        secure
        create_buckets "$@"
        ;;
    *)
        fail "usage: entrypoint.sh tls | master | volume | filer | s3 | buckets [arguments]"
        ;;
esac
