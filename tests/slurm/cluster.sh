#!/usr/bin/env bash
# A single-node SLURM on loopback, for the cluster test (CI runs it as root on a throwaway machine; needs
# Debian's slurmctld, slurmd, slurm-client and munge). No systemd: the daemons are started directly and
# stopped by their PIDs. The config goes to /etc/slurm/slurm.conf, where srun inside jobs looks for it.
#   tests/slurm/cluster.sh start DIR     # daemons' state and logs in DIR
#   tests/slurm/cluster.sh stop DIR
set -euo pipefail
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)

stop() {
  for pidfile in "$dir"/slurmd.pid "$dir"/slurmctld.pid "$dir"/munged.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  rm -f "$dir"/*.pid
}

start() {
  mkdir -p "$dir/spool/d" "$dir/spool/ctld" /run/munge
  # munge: the key authenticates daemons and clients; munged runs as its own user
  [ -f /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key /run/munge && chmod 400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  cp /run/munge/munged.pid "$dir/munged.pid"
  local node cpus mem
  node=$(hostname -s)
  cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' | head -1)
  mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)
  mkdir -p /etc/slurm
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=sparsenet-ci
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/spool/ctld
SlurmdSpoolDir=$dir/spool/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# squeue is the status source without accounting: keep finished jobs visible long enough
MinJobAge=600
ReturnToService=2
SchedulerType=sched/backfill
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$((mem - 1024)) State=UNKNOWN
# up to 4 jobs per core: the executor's status checks back off by 10 s each time no job has finished, so the
# tests' small jobs spend more time waiting for a check than computing
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
  slurmctld
  slurmd
  for _ in $(seq 60); do
    sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix)' && return 0
    sleep 1
  done
  echo "SLURM did not come up; logs in $dir" >&2
  tail -5 "$dir"/slurmctld.log "$dir"/slurmd.log >&2 || true
  return 1
}

"$action"
