# DET curve of one FVC set: FNMR against FMR, both on log scales.
# usage: gnuplot -c bench/fingerprint_det.gp det_DB1_B.dat det_DB1_B.png "DB1_B"
# Input columns (ridgeline fingerprint eval --det-dir): FMR FNMR threshold.
# Rates of zero cannot sit on a log axis: they are drawn at the floor (1e-4),
# which is below what 2,800 impostor comparisons can resolve anyway.
floor = 1e-4
set terminal pngcairo size 720,540 noenhanced
set output ARG2
set title sprintf("DET curve, %s (FVC2002 protocol, all cross-finger impostors)", ARG3)
set logscale xy
set xrange [floor:1]
set yrange [floor:1]
set xlabel "FMR (false-match rate)"
set ylabel "FNMR (false non-match rate)"
set grid xtics ytics mxtics mytics
set key bottom left
clamp(v) = v > floor ? v : floor
plot ARG1 using (clamp($1)):(clamp($2)) with steps lw 2 title "Ridgeline", \
     x title "EER line" dt 2 lc rgb "gray"
