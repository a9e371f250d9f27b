#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "kernels.h"
#include "gemm.h"
#include "gemm_bf16.h"
#include "bf16_peak.h"
#include "fma_peak.h"
static double cpu(void){struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t); return t.tv_sec+1e-9*t.tv_nsec;}
static float *rnd(size_t n, unsigned s){float *x=aligned_alloc(64,(n*4+63)/64*64+64); for(size_t i=0;i<n;i++){s^=s<<13;s^=s>>17;s^=s<<5;x[i]=(float)(s>>8)*(2.0f/16777216.0f)-1.0f;} return x;}
int main(int argc,char**argv){
  const elbo_kernels *k=elbo_kernels_by_name("avx512");
  double t0=cpu(), f=0; while(cpu()-t0<0.5) f+=bf16_peak_avx512_run(1<<15); double bpk=f/(cpu()-t0)/1e9;
  t0=cpu(); f=0; while(cpu()-t0<0.5) f+=fma_peak_avx512_run(1<<15); double fpk=f/(cpu()-t0)/1e9;
  printf("peak (thread CPU time): bf16 %.1f GFLOP/s, fp32 FMA %.1f GFLOP/s\n", bpk, fpk);
  size_t shapes[][6]={{128,40,400,0,1,1},{1024,40,400,0,1,1},{400,20,1024,1,0,0},{128,400,784,0,1,1},{1024,400,784,0,1,1},{1024,784,400,0,1,1},{1024,400,784,0,0,1},{400,784,1024,1,0,0},{784,400,1024,1,0,0},{2048,2048,2048,0,0,0}};
  for(int s=0;s<10;s++){
    size_t m=shapes[s][0],n=shapes[s][1],kk=shapes[s][2]; int ta=shapes[s][3], tb=shapes[s][4], w=shapes[s][5];
    float *a=rnd(m*kk,1),*b=rnd(kk*n,2),*c=rnd(m*n,3);
    elbo_bf16 *ah=malloc(m*kk*2),*bh=malloc(kk*n*2); k->f32_to_bf16(ah,a,m*kk); k->f32_to_bf16(bh,b,kk*n);
    size_t lda=ta?m:kk, ldb=tb?kk:n;
    elbo_gemm_workspace ws; elbo_gemm_workspace_init(&ws,k); elbo_gemm_bf16_workspace wsh; elbo_gemm_bf16_workspace_init(&wsh,k);
    elbo_packed_b pb; elbo_packed_b_alloc(&pb,k,kk,n); elbo_pack_b(&pb,elbo_operand_f32(b,ldb,tb));
    elbo_packed_b_bf16 pbh; elbo_packed_b_bf16_alloc(&pbh,k,kk,n); elbo_pack_b_bf16(&pbh,elbo_operand_bf16(bh,ldb,tb));
    double tb16=0,tf=0; int it=0;
    while(tb16<0.4){
      double x0=cpu();
      if(w) elbo_gemm_bf16_packed(k,&wsh,m,n,kk,1,elbo_operand_bf16(ah,lda,ta),&pbh,0,c,n,NULL);
      else elbo_gemm_bf16(k,&wsh,m,n,kk,1, ta? elbo_operand_f32(a,lda,ta): elbo_operand_bf16(ah,lda,ta), elbo_operand_bf16(bh,ldb,tb),0,c,n,NULL);
      double x1=cpu();
      if(w) elbo_gemm_packed(k,&ws,m,n,kk,1,elbo_operand_f32(a,lda,ta),&pb,0,c,n,NULL);
      else elbo_gemm(k,&ws,m,n,kk,1,elbo_operand_f32(a,lda,ta),elbo_operand_f32(b,ldb,tb),0,c,n,NULL);
      double x2=cpu(); if(it++>0){tb16+=x1-x0; tf+=x2-x1;}
    }
    double fl=2.0*m*n*kk*(it-1);
    printf("%4zux%4zux%4zu %c%c: bf16 %.1f GFLOP/s (%.0f%% of bf16 peak), fp32 %.1f (%.0f%% of fp32 peak), speedup %.2f\n",m,n,kk,ta?'T':'N',tb?'T':'N',fl/tb16/1e9,100*fl/tb16/1e9/bpk,fl/tf/1e9,100*fl/tf/1e9/fpk,tf/tb16);
  }
}
