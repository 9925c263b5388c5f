# One GPU call: the report's FER2013 models and every edge candidate at once.
# The report's two FER2013 models with their own recipes; report runs past its 25 epochs
# so its history shows both the 25-epoch figure and where a longer run goes.
launch reference --arch reference --precision float32
launch report --arch report --epochs 60 --precision float32
# Edge candidates, each with the full recipe for as many epochs as the budget allows.
launch edge --arch edge "${recipe[@]}" --label-smoothing 0.1
launch edge_fast --arch edge_fast "${recipe[@]}" --label-smoothing 0.1
launch edge_wide --arch edge_wide "${recipe[@]}" --label-smoothing 0.1
launch ferplus_edge --arch edge --dataset ferplus "${recipe[@]}"
launch ferplus_wide --arch edge_wide --dataset ferplus "${recipe[@]}"

