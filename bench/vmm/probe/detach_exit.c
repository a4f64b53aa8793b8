/* Does a VMM's process exit have to wait for KVM's VM teardown? (bench/vmm)
 *
 * A child builds a VM with the in-kernel irqchip and PIT2, then exits; the
 * parent times "exit decision -> child reaped". With "detach", the child
 * first forks a helper that inherits the VM fd, so the last close (and
 * kvm_free_pit's SRCU waits) happens in the helper, after the reap.
 *   gcc -O2 -o /tmp/detach_exit bench/vmm/probe/detach_exit.c
 *   /tmp/detach_exit; /tmp/detach_exit detach */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e3+t.tv_nsec/1e6;}
int main(int argc,char**argv){
  int detach=argc>1&&!strcmp(argv[1],"detach");
  double *shared=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0);
  pid_t p=fork();
  if(p==0){
    int kvm=open("/dev/kvm",O_RDWR|O_CLOEXEC);
    int vm=ioctl(kvm,KVM_CREATE_VM,0);
    size_t sz=128ul<<20;
    void*mem=mmap(0,sz,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE,-1,0);
    madvise(mem,sz,MADV_DONTFORK);
    struct kvm_userspace_memory_region r={.slot=0,.memory_size=sz,.userspace_addr=(unsigned long)mem};
    ioctl(vm,KVM_SET_USER_MEMORY_REGION,&r);
    ioctl(vm,KVM_SET_TSS_ADDR,0xfffbd000);
    ioctl(vm,KVM_CREATE_IRQCHIP,0);
    struct kvm_pit_config pc={.flags=KVM_PIT_SPEAKER_DUMMY};
    ioctl(vm,KVM_CREATE_PIT2,&pc);
    ioctl(vm,KVM_CREATE_VCPU,0);
    usleep(20000);
    shared[0]=now();
    if(detach){ if(fork()==0){ setsid(); usleep(0); _exit(0);} }
    _exit(0);
  }
  int st; waitpid(p,&st,0); double t=now();
  printf("%s: exit decision -> reaped %.2f ms\n",detach?"detach":"plain",t-shared[0]);
  return 0;
}
