# A second GPU call: students distilled from the ensemble in .gpu/teacher.npz
# (python -m edgefer.train.teacher), fixed epochs measured from the survey's epoch times;
# and the report's reference model at twice its 15 epochs.
distill=(--augment --schedule cosine --warmup-epochs 3 --weight-decay 0.01 --batch 256 --lr 0.003
         --precision mixed_bfloat16 --teacher .gpu/teacher.npz --teacher-weight 0.5 --epochs "${EPOCHS:-150}")
launch reference30 --arch reference --precision float32 --epochs 30
launch kd_edge --arch edge "${distill[@]}"
launch kd_edge_fast --arch edge_fast "${distill[@]}"
