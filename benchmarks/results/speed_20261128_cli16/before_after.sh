#!/bin/bash
# usage: cli16_cmp.sh N phase  -> alternates base and new, prints user+sys and wall
PH=${2:-prefill}
for i in $(seq $1); do
 for v in base new; do
  if [ $v = base ]; then d=/tmp/cli16_base; else d=/work/wt-cli16; fi
  cd $d; /usr/bin/time -f "$v $PH %e wall %U user %S sys %M KB" /work/wt-cli16/.venv/bin/python -m ringsim sweep --seq 8Ki:16Mi --points 60000 --gpus 8,16,32,64,128 --plans 'ring=P' 'tp=8,pp=P/8' 'tp=8,ring=P/8' 'ulysses=8,ring=P/8' 'tp=4,ring=P/4' 'tp=2,ring=P/2' 'tp=8,pp=P/8,mb=8' 'pp=P/8,ring=8' 'tp=2,pp=2,ring=P/4' 'tp=4,pp=P/4,mb=4' --out /tmp/cli16_o_$v --quiet --phase $PH 2>&1 >/dev/null | tail -1
 done
done
