#!/usr/bin/env bash
# A stand-in for a cluster's submit command (sbatch), for snakemake's cluster-generic executor:
# starts the job script as a separate background process, prints its "job id" (the process id)
# and returns at once, so several jobs run side by side. Each job's start and end times (and
# exit status) go to $SUBMIT_LOG, from which the test reads how many ran at once; each job's
# output goes to job_logs/ beside it, which outlives snakemake's temporary job scripts, so that
# a failed job's error can be read after the run (the test shows it).
set -euo pipefail
jobscript="$1"
log="${SUBMIT_LOG:?set SUBMIT_LOG to the file that records job start and end times}"
output="$(dirname "$log")/job_logs/$(basename "$jobscript").out"
mkdir -p "$(dirname "$output")"
(
  echo "start $(date +%s.%N) $jobscript" >> "$log"
  bash "$jobscript" > "$output" 2>&1 && status=0 || status=$?
  echo "end $(date +%s.%N) $jobscript $status" >> "$log"
) > /dev/null 2>&1 < /dev/null &
echo "$!"
