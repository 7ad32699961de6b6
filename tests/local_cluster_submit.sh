#!/usr/bin/env bash
# A stand-in for a cluster's submit command (sbatch), for snakemake's cluster-generic executor:
# starts the job script as a separate background process, prints its "job id" (the process id)
# and returns at once, so several jobs run side by side. Each job's start and end times go to
# $SUBMIT_LOG, from which the test reads how many ran at once.
set -euo pipefail
jobscript="$1"
log="${SUBMIT_LOG:?set SUBMIT_LOG to the file that records job start and end times}"
(
  echo "start $(date +%s.%N) $jobscript" >> "$log"
  bash "$jobscript" > "$jobscript.out" 2>&1 && status=0 || status=$?
  echo "end $(date +%s.%N) $jobscript $status" >> "$log"
) > /dev/null 2>&1 < /dev/null &
echo "$!"
