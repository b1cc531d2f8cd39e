#!/bin/bash
cd /work/main
COMMON="--dataset digits --data-root ../shared/data --noise 0.05 --outer-steps 3000 --pairs 8 --sigma 0.01 --outer-lr 0.002 --step-mult 0.003 --exp-mult 0.1 --base adam --base-lr 0.01 --theta-init zero_output --max-minutes 18 --no-progress"
OMP_NUM_THREADS=1 /usr/bin/time -f "%U user %S sys %e wall" .venv/bin/python -m metaqnn lopt train $COMMON --truncation 20 --burn-in 0 --logdir runs/lopt_helper/A1
OMP_NUM_THREADS=1 /usr/bin/time -f "%U user %S sys %e wall" .venv/bin/python -m metaqnn lopt train $COMMON --truncation 20 --burn-in 180 --logdir runs/lopt_helper/A2
OMP_NUM_THREADS=1 .venv/bin/python experiments/results/lopt_noise/ablations/quick_eval.py.txt runs/lopt_helper/A1 20 0.01,0.014
OMP_NUM_THREADS=1 .venv/bin/python experiments/results/lopt_noise/ablations/quick_eval.py.txt runs/lopt_helper/A2 20 0.01,0.014
OMP_NUM_THREADS=1 .venv/bin/python experiments/results/lopt_noise/ablations/quick_eval.py.txt runs/lopt_helper/B 20 0.01,0.014
