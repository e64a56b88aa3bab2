# cfg.sh NAME: exports the leaf settings of config NAME
case $1 in
  d) export PB_LEAF_MAX=16 PB_LEAF_BYTES=0 ;;
  s) export PB_LEAF_MAX=128 PB_LEAF_BYTES=16384 ;;
  u) export PB_LEAF_MAX=64 PB_LEAF_BYTES=100000000 ;;
  t) export PB_LEAF_MAX=256 PB_LEAF_BYTES=16384 ;;
esac
