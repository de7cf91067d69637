# shellcheck shell=bash
# A throwaway sshd on port 2299 for the scp/rsync peers of the benchmarks (sourced).
# start_sshd DIR [NETNS]: makes host and user keys under DIR, starts sshd as root, and sets
# SSHD_PID and SSH_KEY (the client key authorised for root). Without NETNS it listens on
# 127.0.0.1; with NETNS it runs inside that network namespace, on all its addresses. The caller
# kills SSHD_PID when done.
start_sshd() {
  local dir=$1 netns=${2:-}
  local -a in_ns=()
  local listen=127.0.0.1
  if [ -n "$netns" ]; then in_ns=(ip netns exec "$netns"); listen=0.0.0.0; fi
  mkdir -p "$dir"; chmod 700 "$dir"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host" >/dev/null
  ssh-keygen -q -t ed25519 -N '' -f "$dir/user" >/dev/null
  cp "$dir/user.pub" "$dir/authorized_keys"
  mkdir -p /run/sshd
  cat > "$dir/sshd_config" <<CFG
Port 2299
ListenAddress $listen
HostKey $dir/host
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
StrictModes no
PidFile $dir/sshd.pid
Subsystem sftp /usr/lib/openssh/sftp-server
CFG
  "${in_ns[@]}" /usr/sbin/sshd -D -f "$dir/sshd_config" &
  SSHD_PID=$!
  SSH_KEY="$dir/user"
  # Ready when a login works.
  for _ in $(seq 50); do
    "${in_ns[@]}" ssh -p 2299 -i "$SSH_KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
      -o LogLevel=ERROR -o BatchMode=yes root@127.0.0.1 true 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the throwaway sshd did not start" >&2
  return 1
}
