#!/usr/bin/env bash
# tests/slurm/cluster.sh — a one-machine Slurm cluster for the tests: munged, slurmctld and slurmd
# with their keys, configuration, state, sockets and logs in one directory, talking over
# localhost only. Source it, then:
#   qkd_cluster_start DIR    starts the daemons (bounded waits; fails with the reason)
#   qkd_cluster_stop         stops them by their pids (also on EXIT if you trap it)
# Exports SLURM_CONF for the clients (sbatch, squeue, scancel, sinfo). Needs root and Debian's
# slurmctld, slurmd, slurm-client and munge.

qkd_cluster_fail() { echo "FAIL: slurm: $*" >&2; [ -n "${QKD_CLUSTER:-}" ] && tail -n 20 "$QKD_CLUSTER"/*.log >&2 2>/dev/null; return 1; }

qkd_cluster_start() {
  local dir=$1 node cpus port
  QKD_CLUSTER=$dir
  for b in munged slurmctld slurmd sbatch squeue sinfo scancel; do
    command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] ||
      { qkd_cluster_fail "'$b' is not installed (apt-get install slurmctld slurmd slurm-client munge)"; return 1; }
  done
  [ "$(id -u)" = 0 ] || { qkd_cluster_fail "the test cluster runs its daemons as root"; return 1; }
  mkdir -p "$dir/ctld" "$dir/spool" "$dir/munge"
  chmod 700 "$dir" "$dir/munge"
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
  /usr/sbin/munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/munge.seed" \
    || { qkd_cluster_fail "munged did not start"; return 1; }
  node=$(hostname -s)
  cpus=$(nproc)
  port=$((20000 + RANDOM % 20000))
  cat > "$dir/slurm.conf" <<CONF
ClusterName=qkdtest
SlurmctldHost=$node(127.0.0.1)
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmctldTimeout=30
SlurmdTimeout=30
KillWait=5
MinJobAge=600
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=qkd Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF=$dir/slurm.conf
  /usr/sbin/slurmctld -f "$SLURM_CONF" -i || { qkd_cluster_fail "slurmctld did not start"; return 1; }
  /usr/sbin/slurmd -f "$SLURM_CONF" -N "$node" || { qkd_cluster_fail "slurmd did not start"; return 1; }
  for _ in $(seq 1 120); do
    if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix)'; then return 0; fi
    sleep 0.5
  done
  qkd_cluster_fail "the node did not come up in 60 s (sinfo: $(sinfo -h 2>&1 | head -n 1))"
}

qkd_cluster_stop() {
  local dir=${QKD_CLUSTER:-}
  [ -n "$dir" ] || return 0
  for p in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
    [ -s "$p" ] && kill "$(cat "$p")" 2>/dev/null || true
  done
  for _ in $(seq 1 50); do
    local alive=0
    for p in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
      [ -s "$p" ] && kill -0 "$(cat "$p")" 2>/dev/null && alive=1
    done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
    [ -s "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null || true
  done
  QKD_CLUSTER=
}
