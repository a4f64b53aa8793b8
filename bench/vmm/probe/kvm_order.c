/* Where rvirt-vmm's start-up and exit time goes in KVM (bench/vmm, issue 2).
 *
 * Builds the same VM skeleton as rvirt-machine (VM, TSS, in-kernel irqchip,
 * PIT2, one 128 MiB memslot, one vCPU) in several orders and times each
 * ioctl and the final close(vm_fd), which is where KVM tears the VM down.
 *   gcc -O2 -o /tmp/kvm_order bench/vmm/probe/kvm_order.c
 *   /tmp/kvm_order [default|memfirst|noreinject|memfirst-noreinject|nopit|split]
 * default:   irqchip, PIT2, then memslot (rvirt-machine's order)
 * memfirst:  memslot before irqchip and PIT2
 * noreinject: KVM_REINJECT_CONTROL(0) after PIT2
 * nopit:     no in-kernel PIT;  split: KVM_CAP_SPLIT_IRQCHIP (QEMU microvm)
 * Every back-to-back synchronize_srcu() in KVM costs whole jiffies (4 ms at
 * HZ=250) on this host, see bench/README.md. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e3+t.tv_nsec/1e6;}
#define T(label, expr) do{double _a=now(); long _r=(expr); double _b=now(); if(_r<0){perror(label);exit(1);} printf("%-28s %7.3f ms\n",label,_b-_a);}while(0)
int main(int argc,char**argv){
  const char*mode=argc>1?argv[1]:"default";
  int kvm=open("/dev/kvm",O_RDWR|O_CLOEXEC);
  int vm; double a=now(); vm=ioctl(kvm,KVM_CREATE_VM,0); printf("%-28s %7.3f ms\n","CREATE_VM",now()-a);
  size_t sz=128ul<<20;
  void*mem=mmap(0,sz,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE,-1,0);
  struct kvm_userspace_memory_region r={.slot=0,.guest_phys_addr=0,.memory_size=sz,.userspace_addr=(unsigned long)mem};
  int memfirst=strstr(mode,"memfirst")!=0;
  if(memfirst) T("SET_USER_MEMORY_REGION",ioctl(vm,KVM_SET_USER_MEMORY_REGION,&r));
  T("SET_TSS_ADDR",ioctl(vm,KVM_SET_TSS_ADDR,0xfffbd000));
  if(strstr(mode,"split")){
    struct kvm_enable_cap c={.cap=KVM_CAP_SPLIT_IRQCHIP,.args={24}};
    T("ENABLE_CAP SPLIT_IRQCHIP",ioctl(vm,KVM_ENABLE_CAP,&c));
  } else {
    T("CREATE_IRQCHIP",ioctl(vm,KVM_CREATE_IRQCHIP,0));
    if(!strstr(mode,"nopit")){
      struct kvm_pit_config pc={.flags=KVM_PIT_SPEAKER_DUMMY};
      T("CREATE_PIT2",ioctl(vm,KVM_CREATE_PIT2,&pc));
      if(strstr(mode,"noreinject")){struct kvm_reinject_control rc={.pit_reinject=0}; T("REINJECT_CONTROL 0",ioctl(vm,KVM_REINJECT_CONTROL,&rc));}
    }
  }
  if(!memfirst) T("SET_USER_MEMORY_REGION",ioctl(vm,KVM_SET_USER_MEMORY_REGION,&r));
  int vcpu; T("CREATE_VCPU",vcpu=ioctl(vm,KVM_CREATE_VCPU,0));
  T("close(vcpu)",close(vcpu));
  T("close(vm)",close(vm));
  return 0;
}
