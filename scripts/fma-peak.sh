#!/usr/bin/env bash
# The CPU's f32 FMA peak (GFLOP/s) on 1 and 2 threads: 12 independent 512-bit (or, with
# WIDTH=256, 256-bit) vfmadd chains per thread — the roofline in BENCHMARKS.md's embeddings
# section. Needs gcc; AVX-512F for the default width.
set -euo pipefail
WIDTH="${WIDTH:-512}"
DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT
if [ "$WIDTH" = 512 ]; then V=__m512; P=_mm512; FLAGS=-mavx512f; LANES=16; else V=__m256; P=_mm256; FLAGS="-mavx2 -mfma"; LANES=8; fi
CHAINS=$(for i in $(seq 0 11); do printf 'x%d=%s_fmadd_ps(x%d,m,c);' "$i" "$P" "$i"; done)
DECL=$(for i in $(seq 0 11); do printf '%s x%d=%s_set1_ps(%d);' "$V" "$i" "$P" "$i"; done)
SUM=$(for i in $(seq 0 11); do printf 's=%s_add_ps(s,x%d);' "$P" "$i"; done)
cat > "$DIR/fma.c" <<C
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#define N 200000000L
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
volatile float sink[8];
static void* run(void* arg){
  $V m=${P}_set1_ps(0.9999f), c=${P}_set1_ps(0.0001f); $DECL
  for(long n=0;n<N/12;n++){ $CHAINS }
  $V s=${P}_setzero_ps(); $SUM float out[$LANES]; ${P}_storeu_ps(out,s); sink[(long)arg]=out[0]; return 0;}
int main(int argc,char**argv){int t=atoi(argv[1]);pthread_t th[8];double t0=now();
  for(long i=0;i<t;i++)pthread_create(&th[i],0,run,(void*)i);for(int i=0;i<t;i++)pthread_join(th[i],0);
  printf("%d thread(s): %.1f GFLOP/s ($WIDTH-bit FMA)\n",t,t*(double)(N/12*12)*$LANES*2/(now()-t0)/1e9);}
C
gcc -O2 $FLAGS -pthread "$DIR/fma.c" -o "$DIR/fma"
"$DIR/fma" 1
"$DIR/fma" 2
