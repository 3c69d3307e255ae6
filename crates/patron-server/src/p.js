/* patron web analytics: first-party, cookie-less unless data-cookie (docs/web-analytics.md) */
(function(w,d){var s=d.currentScript,n=w.navigator,l=w.location;if(!s)return;var S=+s.getAttribute("data-site"),E=s.src.replace(/\/js\/p\.js.*$/,"/collect"),V;
function off(){return n.doNotTrack=="1"||w.doNotTrack=="1"||n.globalPrivacyControl===true}
if(s.hasAttribute("data-cookie")&&!off()){var m=d.cookie.match(/(?:^|; )_pv=([\w-]{8,64})/);V=m?m[1]:(Math.random().toString(36).slice(2)+Date.now().toString(36));d.cookie="_pv="+V+";path=/;max-age=31536000;SameSite=Lax"}
function send(o){if(off())return;o.site=S;if(V)o.visitor=V;var b=JSON.stringify(o);try{if(n.sendBeacon&&n.sendBeacon(E,b))return}catch(e){}fetch(E,{method:"POST",body:b,keepalive:true}).catch(function(){})}
var last;function pv(){if(l.href==last)return;var r=last||d.referrer||null;last=l.href;send({type:"pageview",url:l.href,referrer:r,title:d.title})}
var h=w.history;if(h&&h.pushState){var p=h.pushState;h.pushState=function(){p.apply(h,arguments);pv()};w.addEventListener("popstate",pv)}
d.addEventListener("click",function(e){var t=e.target&&e.target.closest&&e.target.closest("[data-patron-event]");if(t)send({type:"click",url:l.href,event:t.getAttribute("data-patron-event")})},true);
w.patron={identify:function(t){send({type:"identify",token:String(t),url:l.href})}};pv()})(window,document);
