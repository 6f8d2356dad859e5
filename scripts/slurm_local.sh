#!/usr/bin/env bash
# A single-node SLURM cluster with accounting on this machine, for tests, in a network namespace of its own
# whose only interface is the loopback: every daemon listens on 127.0.0.1 and nothing else.
#   scripts/slurm_local.sh start [DIR]      install (Debian packages, if missing), configure under DIR
#                                           (default /tmp/cdyn-slurm), start munged, mariadbd
#                                           (--skip-networking), slurmdbd, slurmctld, slurmd; wait for an idle node
#   scripts/slurm_local.sh run DIR CMD...   run a client (sbatch, cdyn-run -m hydra/launcher=slurm ...) there,
#                                           with SLURM_CONF set
#   scripts/slurm_local.sh stop [DIR]       stop every daemon it started and remove the namespace
# Root only (it starts daemons as root and makes a network namespace).
set -euo pipefail
cmd=${1:?start, run or stop}; dir=${2:-/tmp/cdyn-slurm}; host=$(hostname -s); ns=cdyn-slurm
# nsenter, not `ip netns exec`: the latter remounts /sys, which hides the cgroup file system slurmd needs.
inside() { nsenter --net="/run/netns/$ns" env SLURM_CONF="$dir/slurm.conf" "$@"; }
log() { echo "slurm_local: $*" >&2; }

stop() {
  for pidfile in "$dir"/run/*.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile"); kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true; rm -f "$pidfile"
  done
  # Job steps of cancelled jobs can outlive slurmd here (seen after scancel in the namespace).
  pkill -9 -x slurmstepd 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  log "stopped"
}

install() {
  command -v slurmctld >/dev/null && command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null && return
  log "installing slurm, munge and mariadb (Debian packages)"
  # Exit status 3: the packages could not be had here (no apt, no network), which tests treat as a skip.
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurmctld slurmd slurm-client slurmdbd munge mariadb-server >/dev/null; } || { log "install failed"; exit 3; }
}

configure() {
  mkdir -p "$dir"/{run,log,state,spool,db,munge}
  chmod 700 "$dir/munge"
  [ -f "$dir/munge/munge.key" ] || dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 2>/dev/null
  chmod 400 "$dir/munge/munge.key"
  cat > "$dir/slurm.conf" <<CONF
ClusterName=cdyn
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6829
JobAcctGatherType=jobacct_gather/none
MailProg=/bin/true
SlurmctldPort=6827
SlurmdPort=6828
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ReturnToService=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=2 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  cat > "$dir/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6829
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
LogFile=$dir/log/slurmdbd.log
PidFile=$dir/run/slurmdbd.pid
CONF
  chmod 600 "$dir/slurmdbd.conf"
}

wait_for() {  # seconds, description, command... (each try bounded to 5 s)
  local limit=$1 what=$2 deadline; shift 2
  deadline=$((SECONDS + limit))
  while [ $SECONDS -lt $deadline ]; do inside timeout 5 "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  log "timed out after ${limit}s waiting for $what; logs in $dir/log"; stop; exit 1
}

start() {
  if pgrep -x slurmctld >/dev/null || ip netns list | grep -qw "$ns"; then
    log "a cluster (or its namespace $ns) is already up; stop it first"; exit 1
  fi
  install; configure
  ip netns add "$ns" 2>/dev/null || true
  ip netns exec "$ns" ip link set lo up
  # getaddrinfo(AI_ADDRCONFIG), which Slurm resolves with, wants an IPv4 address outside 127/8: a link-local
  # one on the namespace's loopback interface, which reaches nothing outside it.
  ip netns exec "$ns" ip addr add 169.254.77.1/32 dev lo 2>/dev/null || true
  # The default socket: slurmdbd's clients reach munge only there (AuthInfo does not reach them).
  mkdir -p /run/munge
  inside munged --force --key-file="$dir/munge/munge.key" --socket=/run/munge/munge.socket.2 \
    --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed"
  [ -d "$dir/db/mysql" ] || mariadb-install-db --user=root --datadir="$dir/db" >/dev/null 2>&1
  # slurmdbd reaches MariaDB through the default socket (it has no option for another one).
  mkdir -p /run/mysqld
  (setsid nsenter --net="/run/netns/$ns" mariadbd --user=root --datadir="$dir/db" --skip-networking --socket=/run/mysqld/mysqld.sock \
     --pid-file="$dir/run/mariadbd.pid" --log-error="$dir/log/mariadb.log" &)
  wait_for 60 mariadb test -S /run/mysqld/mysqld.sock
  inside slurmdbd
  wait_for 60 slurmdbd sacctmgr -i list cluster
  inside sacctmgr -i add cluster cdyn >/dev/null 2>&1 || true
  inside slurmctld -f "$dir/slurm.conf"
  inside slurmd -f "$dir/slurm.conf"
  wait_for 90 "an idle node" bash -c "sinfo -h -o %t | grep -q idle"
  log "up: scripts/slurm_local.sh run $dir <command>"
}

case $cmd in
  start) start ;;
  run) shift 2; inside "$@" ;;
  stop) stop ;;
  *) log "unknown command $cmd: start, run or stop"; exit 2 ;;
esac
