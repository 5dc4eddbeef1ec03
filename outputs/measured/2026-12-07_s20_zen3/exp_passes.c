#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
#include <math.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#pragma omp declare simd notinbranch
static inline float exp_nonpositive(float x) {
  float below = x < -87.f ? 0.f : 1.f;
  x = x < -87.f ? -87.f : x;
  float n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  union { uint32_t u; float f; } scale;
  scale.u = (uint32_t)((int32_t)n + 127) << 23;
  return p * scale.f * below;
}
float maxpass(const float*x,int64_t V){float max=-INFINITY;
#pragma omp simd reduction(max : max)
for(int64_t j=0;j<V;++j) max = x[j] > max ? x[j] : max; return max;}
float exppass(const float*x,int64_t V,float max){float sum=0;
#pragma omp simd reduction(+ : sum)
for(int64_t j=0;j<V;++j) sum += exp_nonpositive(x[j]-max); return sum;}
int main(){int64_t R=256,V=8000;float*x=malloc(R*V*4);
srand(1);for(int64_t i=0;i<R*V;i++)x[i]=3.f*((rand()/(float)RAND_MAX)*2-1);
volatile float s=0;
for(int rep=0;rep<3;rep++){
double t=now();for(int w=0;w<50;w++)for(int r=0;r<R;r++)s+=maxpass(x+r*V,V);double a=(now()-t)/50*1e3;
t=now();for(int w=0;w<50;w++)for(int r=0;r<R;r++)s+=exppass(x+r*V,V,3.f);double b=(now()-t)/50*1e3;
printf("1 thread: max pass %.3f ms, exp pass %.3f ms\n",a,b);}
}
